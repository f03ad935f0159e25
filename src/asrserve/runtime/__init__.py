"""The composition root: what each entry point runs, built from the settings.

- `components`: the pieces every process shares (model registry, job store, job queue)
- `server`: the `asrserve serve` application (HTTP API, jobs, the FunASR WebSocket)
- `worker`: the `asrserve worker` process (a Celery worker running jobs from Redis)

Only this package knows all of `asrserve.api`, `asrserve.ws` and `asrserve.jobs`; they are
independent of each other. `worker` imports neither FastAPI nor the WebSocket server.
"""
