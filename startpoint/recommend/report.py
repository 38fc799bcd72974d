"""The plain-text answer printed by `startpoint recommend`, from its JSON report."""

from __future__ import annotations


def _ci(low, high) -> str:
    return f"{low:+.2f}..{high:+.2f}"


def summary_lines(report: dict) -> list[str]:
    t, te = report["target"], report["target_effect"]
    lines = [
        f"Target {t['dataset_id']}: {t['n_train']} train rows, {t['n_labels']} labels; architecture "
        f"{report['architecture']} (pretrained model {report['pretrained_model']}).",
        f"Predicted sensitivity of this target: {te['mean']:+.2f} points mean gain (95% interval "
        f"{_ci(te['low'], te['high'])}; {te['method']}"
        + (f" on {', '.join(te['features'])}" if te["features"] else "") + f", {te['n_targets']} known targets).",
        "",
        "rank  expected gain [95% interval]   P(beats pretrained)  model",
    ]
    for c in report["candidates"]:
        lines.append(f"{c['rank']:>4}  {c['expected_gain']:+6.2f} [{_ci(c['low'], c['high']):>15}]   "
                     f"{c['p_beats_pretrained']:>6.0%}               {c['model_id']}")
    protocol = report.get("protocol")
    if protocol:
        pre = protocol["pretrained"]
        budget = protocol.get("finetunes_budget")
        spend = (f"{len(protocol['seeds'])} seeds each" if budget is None else
                 f"{len(protocol.get('spent') or [])} of at most {budget} finetunes, seeds where the decision was open")
        lines += ["", f"Runs on your data ({spend}, {protocol['run_split_sizes']['train']} train examples, "
                      f"{protocol['seconds']:.0f} s):",
                  f"  pretrained {pre['model_id']}: mean {_mean(pre['scores'])}"
                  + ("" if budget is None else f" ({len(pre['scores'])} seeds)")]
        for g in protocol["gains"]:
            lines.append(f"  rank {g['rank']} {g['model_id']}: gain {g['gain']:+.2f} (95% CI {_ci(g['low'], g['high'])}),"
                         f" predicted {g['predicted_gain']:+.2f}" + ("" if budget is None else f", {g['n_seeds']} seeds"))
        for s in protocol["skipped"]:
            lines.append(f"  skipped rank {s['rank']} {s['model_id']}: {s['reason']}")
        if protocol["stopped_early"]:
            lines.append(f"  stopped early: {protocol['stopped_early']}")
    lines += ["", "Decision: " + report["decision"]["text"]]
    return lines


def _mean(scores: list[float]) -> str:
    return f"{sum(scores) / len(scores):.2f}" if scores else "n/a"
