from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from smsgateway.deps import RuntimeDep
from smsgateway.providers.health import circuit_state
from smsgateway.workers.loop import stalled_loops

router = APIRouter(tags=["ops"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    provider_circuit: str | None = Field(
        description="closed: sending normally; open: the provider keeps failing and workers "
        "hold messages back; half_open: probing it again",
    )
    stalled_loops: list[str] = Field(
        default_factory=list,
        description="Background loops of this process with no progress for"
        " SMSGW_LOOP_STALL_SECONDS (stuck, or failing every pass): the process needs a restart",
    )


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Database unreachable, or a loop stalled"}},
    summary="The database is reachable, every background loop makes progress",
)
async def readyz(runtime: RuntimeDep) -> Readiness | JSONResponse:
    """Ready while the database answers and the background loops make progress.

    Events can still be accepted and queued when the provider's circuit is
    open, so that state is reported, not failed on. A stalled loop (a
    dispatcher stuck or failing every pass) is: messages would stay queued.
    """
    stalled = stalled_loops(runtime.settings.worker.stall_seconds)
    try:
        async with runtime.sessionmaker() as session:
            circuit = await circuit_state(session, runtime.provider.name)
    except Exception:
        body = Readiness(
            status="unavailable",
            database="unreachable",
            provider_circuit=None,
            stalled_loops=stalled,
        )
        return JSONResponse(body.model_dump(), status_code=503)
    ready = Readiness(
        status="unavailable" if stalled else "ok",
        database="ok",
        provider_circuit=circuit,
        stalled_loops=stalled,
    )
    if stalled:
        return JSONResponse(ready.model_dump(), status_code=503)
    return ready
