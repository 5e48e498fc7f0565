"""Environments in worker processes: `parallel_envs` makes `envs.make_vector`'s (optionally
asynchronous) vector env and wraps it in `WorkerGuard`, so a worker that raises or dies gives a
RuntimeError naming the environment and the worker, not a bare BrokenPipeError or a hang."""

from __future__ import annotations

import gymnasium as gym

import envs


class WorkerGuard(gym.vector.VectorWrapper):
    """A vector env whose failing `step`/`reset` (a worker that raised, died or was killed) raises a
    RuntimeError naming the environment and the dead workers, and stops the other workers."""

    def __init__(self, env: gym.vector.VectorEnv, env_id: str):
        super().__init__(env)
        self.env_id = env_id

    def reset(self, **kwargs):
        try:
            return self.env.reset(**kwargs)
        except Exception as e:
            raise self._failure("reset", e) from e

    def step(self, actions):
        try:
            return self.env.step(actions)
        except Exception as e:
            raise self._failure("step", e) from e

    def _failure(self, call: str, error: Exception) -> RuntimeError:
        processes = getattr(self.env.unwrapped, "processes", [])
        dead = [f"worker {i} (pid {p.pid}) exited with code {p.exitcode}" for i, p in enumerate(processes) if p.exitcode is not None]
        self._stop_workers()
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        return RuntimeError(
            f"environment {self.env_id!r} failed in {call}() of its vector env ({detail})" + (f"; {', '.join(dead)}" if dead else "")
        )

    def _stop_workers(self) -> None:
        """Kill the workers and close the pipes without talking to them (a dead pipe makes `close()` raise)."""
        base = self.env.unwrapped
        for p in getattr(base, "processes", []):
            if p.is_alive():
                p.kill()
            p.join(timeout=5)
        for pipe in getattr(base, "parent_pipes", []) or []:
            if pipe is not None:
                pipe.close()
        if hasattr(base, "processes"):
            base.closed = True

    def close(self, **kwargs) -> None:
        try:
            self.env.close(**kwargs)
        except (OSError, EOFError):  # a worker died since the last call
            self._stop_workers()


def parallel_envs(env_id: str, n: int, seed: int | None = None, asynchronous: bool | None = None, **options) -> WorkerGuard:
    """`envs.make_vector(env_id, n, ...)` (asynchronous: one worker process per env) behind a WorkerGuard."""
    return WorkerGuard(envs.make_vector(env_id, n, seed=seed, asynchronous=asynchronous, **options), env_id)
