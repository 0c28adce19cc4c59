"""A trial actor stopped by SIGTERM ends without a traceback on the run's console, on real Ray.

Ray's own worker handler raises SystemExit wherever the main thread is. When that is a finalizer
(a tensor freed while Tune stops a reused actor), Python swallows it and prints "Exception ignored
... SystemExit: 1", which Ray streams to the driver's console, and the worker lives on. The
actor below loads the trainables the way Ray loads a trial (in its main thread) and then takes the
signal inside a finalizer, so the case is made to happen every time rather than now and then."""

from __future__ import annotations

import glob
import os
import time

import pytest
import ray

pytestmark = pytest.mark.ray


@ray.remote(num_cpus=0)
class TrialLikeActor:
    def __init__(self, module: str):
        import importlib

        importlib.import_module(module)  # as Ray does for the trial function: in the main thread

    def pid(self) -> int:
        return os.getpid()

    def signal_inside_a_finalizer(self) -> str:
        import signal
        import weakref

        class Freed:
            pass

        def finalizer():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(200):  # bytecode for the handler to run on, still inside the finalizer
                time.sleep(0.005)

        thing = Freed()
        weakref.finalize(thing, finalizer)
        del thing  # the finalizer runs here; Ray's handler's SystemExit would be swallowed in it
        time.sleep(2)
        return "lived on after SIGTERM"


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():  # an earlier test's in-process Ray: this test needs its own log folder
        ray.shutdown()
    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray._private.worker.global_worker.node.get_logs_dir_path()
    ray.shutdown()


def worker_stderr(logs_dir: str, pid: int) -> str:
    text = ""
    for path in glob.glob(os.path.join(logs_dir, f"worker-*-{pid}.err")):
        with open(path) as f:
            text += f.read()
    return text


@pytest.mark.parametrize("module", ["trainables.policy_trial", "trainables.admm_trial"])
def test_sigterm_in_a_finalizer_ends_the_trial_actor_quietly(local_ray, module):
    actor = TrialLikeActor.remote(module)
    pid = ray.get(actor.pid.remote())
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actor.signal_inside_a_finalizer.remote(), timeout=60)
    time.sleep(1)  # the log files are written by the worker itself: give them a moment
    err = worker_stderr(local_ray, pid)
    assert "Exception ignored" not in err and "SystemExit" not in err and "Traceback" not in err, err


def test_driver_and_other_threads_keep_their_handlers():
    import signal
    import threading

    from trainables.worker import quiet_sigterm

    before = signal.getsignal(signal.SIGTERM)
    quiet_sigterm()  # the pytest process is a Ray driver here, not a worker
    thread = threading.Thread(target=quiet_sigterm)
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) is before
