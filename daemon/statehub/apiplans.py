"""The HTTP routes of the workplan registry: ``GET /workplans`` and ``/workplans/{repo}/{id}``.

Validate, call the store, answer, as :mod:`statehub.api` does for the rest of the API (which
adds these routes to its app). The filters are those of ``statehub workplans``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, PlainValidator, WithJsonSchema

from statehub.planregistry import changed_since
from statehub.timefmt import utc_now

if TYPE_CHECKING:
    from statehub.api import StorePool

PAGE_LIMIT = 1000


class PlanFindingOut(BaseModel):
    check: str
    message: str


class WorkplanOut(BaseModel):
    """One workplan of the fleet as the last sweep that read its repo found it."""

    repo: str
    id: str | None = Field(description="null when its front matter gives no usable id")
    key: str = Field(description="its id, or its path when it has no usable id of its own")
    title: str | None
    status: str | None
    path: str
    fields: dict[str, str] = Field(description="the other front-matter keys with plain values")
    finding: PlanFindingOut | None = Field(description="C-05 or C-06 when its front matter fails")
    first_seen: str
    changed_at: str = Field(description="when a sweep last saw it added, changed or moved")
    last_seen: str | None = Field(description="its repo's last assessment")


class WorkplanChangeOut(BaseModel):
    id: int
    repo: str
    key: str
    plan_id: str | None
    kind: str = Field(description="added, changed, moved or removed")
    path: str
    old_path: str | None
    old_status: str | None
    new_status: str | None
    summary: str = Field(description="one line, e.g. 'STATE-WP-0064: active -> finished'")
    first_read: bool = Field(description="added by its repo's first read into the registry")
    run_id: str = Field(description="detail.run_id of the sweep that saw it")
    seen_at: str


class WorkplanPage(BaseModel):
    total: int = Field(description="plans matching the filters, in all")
    limit: int
    offset: int
    workplans: list[WorkplanOut]


class WorkplanDetail(WorkplanOut):
    changes: list[WorkplanChangeOut] = Field(description="its history, newest first")


def _changed_since(value: object) -> str:
    return changed_since(str(value), utc_now())


ChangedSince = Annotated[
    str,
    PlainValidator(_changed_since),
    WithJsonSchema({"type": "string", "examples": ["7d", "12h", "2026-12-01"]}),
]


def add_workplan_routes(app: FastAPI, pool: StorePool, problems: dict[int | str, Any]) -> None:
    """``GET /workplans`` (filtered, paged) and ``GET /workplans/{repo}/{id}``."""

    @app.get(
        "/workplans",
        response_model=WorkplanPage,
        responses=problems,
        summary="List the fleet's workplans",
    )
    def workplans(
        status: Annotated[
            list[str] | None, Query(description="only plans with this status (repeatable)")
        ] = None,
        repo: Annotated[str | None, Query(description="only the plans of this repo")] = None,
        changed_since: Annotated[
            ChangedSince | None,
            Query(description="only plans added or changed since: an age (7d, 12h) or a date"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT, description="plans per page")] = 100,
        offset: Annotated[int, Query(ge=0, description="plans skipped")] = 0,
    ) -> Response:
        """The registry's workplans in repo and id order, a page at a time."""
        with pool.store() as db:
            total, listed = db.workplans_json(
                statuses=status or (),
                repo=repo,
                changed_since=changed_since,
                limit=limit,
                offset=offset,
            )
        # The list as SQLite wrote it (statehub workplans --json prints the same text).
        body = f'{{"total":{total},"limit":{limit},"offset":{offset},"workplans":{listed}}}'
        return Response(body, media_type="application/json")

    @app.get(
        "/workplans/{repo}/{plan:path}",
        response_model=WorkplanDetail,
        responses={**problems, 404: {"description": "no such workplan in the registry"}},
        summary="One workplan and its history",
    )
    def workplan(repo: str, plan: str) -> JSONResponse:
        """One plan by its id (or, lacking one, its path) and its changes, newest first."""
        with pool.store() as db:
            found = db.workplan(repo, plan)
        if found is None:
            raise HTTPException(404, detail=f"no workplan {plan!r} in repo {repo!r}")
        return JSONResponse(found)
