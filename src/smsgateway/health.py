from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from smsgateway.deps import RuntimeDep

router = APIRouter(tags=["ops"])


class Health(BaseModel):
    status: str


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Database unreachable"}},
    summary="The database is reachable",
)
async def readyz(runtime: RuntimeDep) -> Health | JSONResponse:
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return JSONResponse({"status": "database_unavailable"}, status_code=503)
    return Health(status="ok")
