"""The recorder's resume files: the state at each generation close plus a per-result log, and
what load_saved makes of a log cut short at any point."""

import json
import math

import pytest

from evo.core.trial import Outcome, RunContext
from evo.core.population import FINISHED, Population
from evo.runs.recorder import LOG_FILE, SearchRecorder
from evo.runs.resume import load_saved
from evo.runs.schema import GENERATION_SCHEMA, TRIAL_SCHEMA
from evo.runs.parquet import read_table
from tests.evo.test_population import SPACE, accuracy, cost, make


def recorder_for(population, run_dir):
    recorder = SearchRecorder(run_dir, context=RunContext(method="evo", seed=0, target="bitserial", budget="bops=1/8"),
                              decode=SPACE.decode, log=lambda *_: None)
    recorder.state_fn = lambda: {"population": population.state()}
    recorder.save_state()
    return recorder


def run(population, recorder, *, stop_after=None):
    told = 0
    while (item := population.ask()) is not FINISHED:
        if stop_after is not None and told == stop_after:
            return
        closed = len(population.generation_stats)
        population.tell(item.ask_id, accuracy(item.genome), cost(item.genome))
        recorder.on_evaluated(f"t{item.ask_id}", item, {"accuracy": accuracy(item.genome), "compute_seconds": 1.0},
                              Outcome(False, "", accuracy(item.genome)))
        for stats in population.generation_stats[closed:]:
            recorder.on_generation(stats)
        told += 1


def resumed(run_dir):
    state, entries = load_saved(run_dir)
    population = Population.from_state(state["population"], cost_fn=cost)
    population.replay([(e["genome"], math.nan if e["accuracy"] is None else e["accuracy"],
                        cost(tuple(e["genome"])), e["failed"]) for e in entries])
    return population, state


@pytest.mark.parametrize("stop_after", [0, 3, 17, 30])
def test_state_and_log_resume_where_the_driver_stopped(tmp_path, stop_after):
    population = make()
    recorder = recorder_for(population, tmp_path)
    run(population, recorder, stop_after=stop_after)
    log_lines = (tmp_path / LOG_FILE).read_text().splitlines()
    # emptied at each generation close: only this generation's results, never the whole history
    assert len(log_lines) == stop_after - sum(s["trials"] for s in population.generation_stats)
    again, state = resumed(tmp_path)
    for key in ("history", "generation_stats", "parents", "rng"):
        assert again.state()[key] == population.state()[key]
    assert state["recorder"]["trials_total"] == stop_after
    rows = read_table(tmp_path / "trials.parquet", TRIAL_SCHEMA).num_rows
    assert rows == stop_after


def test_a_torn_last_line_and_lines_older_than_the_state_are_dropped(tmp_path):
    population = make()
    recorder = recorder_for(population, tmp_path)
    run(population, recorder, stop_after=5)
    log = tmp_path / LOG_FILE
    whole = log.read_text()
    log.write_text(whole + '{"genome": [0, 1')  # killed mid-write
    assert len(load_saved(tmp_path)[1]) == 5
    older = json.loads(whole.splitlines()[0]) | {"generation": -1}
    log.write_text(json.dumps(older) + "\n" + whole)  # killed between writing the state and emptying the log
    assert len(load_saved(tmp_path)[1]) == 5
    log.write_text("not json\n" + whole)
    with pytest.raises(ValueError, match="line 1 is not JSON"):
        load_saved(tmp_path)


def test_generations_closed_before_a_kill_get_their_rows_on_resume(tmp_path):
    population = make()
    recorder = recorder_for(population, tmp_path)
    run(population, recorder)  # the whole search; now forget the last two generation rows
    folder = tmp_path / "generations.parquet"
    parts = sorted(folder.glob("part-*.parquet"))
    for part in parts[-2:]:
        part.unlink()
    recorder.catch_up(population.generation_stats)
    generations = read_table(folder, GENERATION_SCHEMA).column("generation").to_pylist()
    assert sorted(generations) == list(range(4))
    state, entries = load_saved(tmp_path)
    assert state["population"]["finished"] and entries == [] and not (tmp_path / LOG_FILE).read_text()


def test_unlogged_trainings_are_the_finished_search_results_the_driver_never_logged(tmp_path):
    from evo.runs.resume import unlogged_trainings

    lines = [{"phase": "search", "genome": "1.0.0|0.1.1", "generation": 0, "result": {"accuracy": 0.5}},
             {"phase": "search", "genome": "2.0.0|0.1.1", "generation": 0, "result": {"accuracy": 0.6}},
             {"phase": "final", "genome": "3.0.0|0.1.1", "result": {"accuracy": 0.7}},  # not a search result
             {"phase": "search", "genome": "2.0.0|0.1.1", "generation": 0, "result": {"accuracy": 0.6}}]  # again
    text = "".join(json.dumps(line) + "\n" for line in lines) + '{"phase": "search", "genome": "4.0'  # torn
    (tmp_path / "trainings.jsonl").write_text(text)
    lost = unlogged_trainings(tmp_path, told={((1, 0, 0, 0, 1, 1), 0)})
    assert [record["genome"] for record in lost] == ["2.0.0|0.1.1"]
    # with successive-halving rungs, a genome told at rung 0 whose rung-1 training was never told
    rung = [{"phase": "search", "genome": "1.0.0|0.1.1", "generation": 0, "rung": r, "result": {"accuracy": a}}
            for r, a in ((0, 0.5), (1, 0.55))]
    (tmp_path / "trainings.jsonl").write_text("".join(json.dumps(line) + "\n" for line in rung))
    lost = unlogged_trainings(tmp_path, told={((1, 0, 0, 0, 1, 1), 0)})
    assert [(record["genome"], record["rung"]) for record in lost] == [("1.0.0|0.1.1", 1)]
    (tmp_path / "trainings.jsonl").write_text(text)
    (tmp_path / "trainings.jsonl").write_text("not json\n" + text)
    with pytest.raises(ValueError, match="line 1 is not JSON"):
        unlogged_trainings(tmp_path, told=set())
    assert unlogged_trainings(tmp_path / "nowhere", told=set()) == []


def test_a_run_folder_from_before_rungs_restores_its_rows_as_rung_zero(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    old = pa.schema([f for f in TRIAL_SCHEMA if f.name not in ("rung", "val_examples")])
    (tmp_path / "trials.parquet").mkdir()
    pq.write_table(pa.Table.from_pylist([{"phase": "search", "genome_key": "1.0.0"}], schema=old),
                   tmp_path / "trials.parquet" / "part-00000.parquet")
    recorder = recorder_for(make(), tmp_path)
    recorder.restore_counts({"trials_total": 1})
    assert recorder._written == {"1.0.0@0"} and recorder.trials_total == 1
