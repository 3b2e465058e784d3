from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from smsgateway.deps import RuntimeDep
from smsgateway.providers.health import circuit_state

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


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Database unreachable"}},
    summary="The database is reachable; the provider's circuit state",
)
async def readyz(runtime: RuntimeDep) -> Readiness | JSONResponse:
    """Ready while the database answers: events can still be accepted and queued
    when the provider's circuit is open, so that state is reported, not failed on."""
    try:
        async with runtime.sessionmaker() as session:
            circuit = await circuit_state(session, runtime.provider.name)
    except Exception:
        body = Readiness(status="unavailable", database="unreachable", provider_circuit=None)
        return JSONResponse(body.model_dump(), status_code=503)
    return Readiness(status="ok", database="ok", provider_circuit=circuit)
