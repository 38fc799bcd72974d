"""Budgeted ranking: which finetunes to buy next for a ranking, and when to stop (docs/budgeted_ranking.md)."""

from startpoint.budget.policies import (  # noqa: F401
    ABLATIONS,
    M0,
    POLICIES,
    RACE_LEVEL,
    SCREEN_SHARE,
    Grid,
    Policy,
    ProbeHalving,
    ProbeTopK,
    Spend,
    Uniform,
    centered_mean,
    halving_schedule,
    make_policy,
    paired_settled,
    probe_order,
    run_key,
    spend,
)
