"""What the policy-screening methods (evo, uniform, random, optuna) share: the same preparation
(data, validation split, base model, layer specs, budget, genome space), the same policy trainable
(fine-tune steps per trial, final steps), the same final step and table; each supplies only
``screen``. Also the Tune callback that writes each screened trial's row as it ends."""

from __future__ import annotations

from typing import Callable

from ray.tune import Callback

from evo.core.trial import outcome, trial_row
from evo.runs.parquet import PartWriter
from evo.runs.pipeline import Screened, Session, final_phase, make_trainable, run_metadata
from evo.runs.schema import TRIAL_SCHEMA


class PolicyMethod:
    """Base of the methods that screen policies with the policy trainable."""

    name = "policy"

    def prepare(self, cfg, *, resume: bool, log: Callable):
        from evo.runs.prepare import prepare

        if cfg.final_fill and self.name != "evo":  # the fill walks evo's sensitivity tables
            raise ValueError(f"final_fill=True is a setting of evo search; the {self.name} baseline fine-tunes "
                             "its final policies as screened (set final_fill false)")
        if cfg.surrogate and self.name != "evo":  # the pre-screen steers evo's breeding
            raise ValueError(f"surrogate=True is a setting of evo search; the {self.name} baseline breeds no "
                             "children to pre-screen (set surrogate false)")

        return prepare(cfg, resume=resume, log=log)

    def needs_cluster(self, prep, *, resume: bool) -> bool:
        return True

    def metadata(self, prep) -> dict:
        return run_metadata(self.name, prep)

    def trainable(self, prep):
        return make_trainable(prep)

    def screen(self, session: Session) -> Screened:
        raise NotImplementedError

    def final(self, session: Session, screened: Screened) -> list[dict]:
        return final_phase(session, screened)

    def table(self, session: Session, finals: list[dict]) -> str:
        from evo.runs.summary import format_final_table

        return format_final_table(finals, session.prep)


def evaluated_rows(rows: list[dict]) -> list[tuple]:
    """(genome, accuracy, cost, violation) of the screened rows that did not fail."""
    return [(tuple(r["genome"]), r["accuracy"], r["cost"], r["violation"]) for r in rows if r["status"] == "ok"]


class RowStreamer(Callback):
    """Appends each finished trial to trials.parquet as it ends (a killed driver keeps them,
    and ``finished_at`` orders the hypervolume-vs-trials curve)."""

    def __init__(self, session: Session):
        self.writer = PartWriter(session.run_dir / "trials.parquet", TRIAL_SCHEMA)
        self.context = session.context
        self.rows: list[dict] = []

    def on_trial_complete(self, iteration: int, trials, trial, **info) -> None:
        self._write(trial, trial.last_result, errored=False)

    def on_trial_error(self, iteration: int, trials, trial, **info) -> None:
        self._write(trial, None, errored=True)

    def _write(self, trial, result: dict | None, errored: bool) -> None:
        row = trial_row(self.context, trial.config["item"], result, outcome(result, errored), trial_id=trial.trial_id)
        self.writer.append([row])
        self.rows.append(row)


def tune_screen(session: Session, trials: int, **tuner_args) -> list[dict]:
    """``trials`` trials through Tune; each row is written as its trial ends."""
    import time

    from evo.tune.tuner import build_tuner

    cfg = session.prep.cfg
    rows = RowStreamer(session)
    build_tuner(session.trainable, run_dir=session.run_dir, experiment=f"{session.method}-{int(time.time())}",
                max_concurrent=session.slots, max_failures=cfg.max_failures, verbose=cfg.verbose,
                num_samples=trials, callbacks=[rows], **tuner_args).fit()
    return rows.rows


def search_trials(prep) -> int:
    """The number of trials `evo search` trains with the same settings (evo.core.population.planned_trials)."""
    from evo.core.population import planned_trials

    return planned_trials(prep.cfg.population, prep.cfg.generations)
