"""`evo baseline uniform`: every uniform policy of the space within the budget (the least-pruned
one per bit pair, ``evo.core.initial.least_pruned_uniforms``), screened as one Tune grid."""

from __future__ import annotations

from evo.core.initial import least_pruned_uniforms
from evo.methods.screening import PolicyMethod, evaluated_rows
from evo.runs.pipeline import Screened, Session, run_policy_grid


class Uniform(PolicyMethod):
    name = "uniform"

    def screen(self, session: Session) -> Screened:
        prep = session.prep
        candidates = least_pruned_uniforms(prep.space, prep.cost_fn, prep.limit)
        session.log(f"uniform: screening {len(candidates)} uniform policies within budget, "
                    f"{prep.cfg.fine_tune_steps} fine-tune steps each")
        rows = run_policy_grid(session, [("uniform", g) for g in candidates], phase="search")
        return Screened(evaluated=evaluated_rows(rows), stats={"trials": len(rows)})
