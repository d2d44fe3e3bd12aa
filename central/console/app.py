"""The console's FastAPI app: HTML pages (server-rendered) over a JSON API (``/api``).

Every route carries its ``PERMISSIONS`` key (``x-permission`` in the OpenAPI document) and
one app-wide dependency authorises it: the staff certificate the handshake verified, a
live session on that certificate, the role, and the CSRF token on every change. A route
without a key is refused to everyone.
"""

import datetime as dt
import pathlib
import secrets
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import sqlalchemy as sa
from cryptography import x509
from fastapi import Depends, FastAPI, Form, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from starlette.datastructures import FormData, UploadFile
from starlette.responses import StreamingResponse

from central import proposals
from central.certification import assisted as assisted_share
from central.certification.settings import Policy
from central.console import access, charts, figures, identity, proposing, queries, reviews, web
from central.console.context import Context
from central.console.fresh import Fresh
from central.console.server import PEER_CERT
from central.console.settings import ConsoleSettings
from central.fleet import alerts as fleet_alerts
from central.fleet import status as fleet_status
from central.notify import reminders
from central.people.registries import RegistryError
from central.people.roster import RosterError
from central.proposals import assisted as proposals_assisted
from central.proposals.base import Resources
from central.proposals.settings import ProposalSettings
from central.proposals.staffing import STAFF_KINDS
from central.staff import audit, otp
from central.staff.identity import Actor
from central.staff.settings import StaffSettings
from central.staff.tables import audit_log
from protocol.messages import Channel, Method

COOKIE = "__Host-lifecert-session"
SIGNIN_COOKIE = "__Host-lifecert-signin"
CSRF_HEADER = "x-csrf-token"
PERIOD = r"^\d{4}-(0[1-9]|1[0-2])$"
ID_AFTER = r"^[0-9X]{1,18}$"
_SAFE = ("GET", "HEAD")
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # no control characters (PostgreSQL refuses NUL)
OTP_CODE = r"^[0-9A-Za-z -]{6,20}$"  # a TOTP code or a recovery code (central.staff.otp)


class RefusedError(Exception):
    """A request refused with ``status``: JSON for the API, a page for the browser."""

    def __init__(
        self, status: int, message: str, field: str | None = None, signin: bool = False
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.signin = status, message, field, signin


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _peer(request: Request) -> bytes:
    der = getattr(request.state, PEER_CERT, None)
    if not der:  # the handshake requires one: only a server without TLS gets here
        raise RefusedError(401, "no client certificate: the console needs a staff certificate")
    return bytes(der)


async def authorise(request: Request) -> access.Session | None:
    """The app-wide check: certificate, session, role, CSRF (see the module docstring)."""
    route = request.scope.get("route")
    key = (getattr(route, "openapi_extra", None) or {}).get("x-permission")
    rule = access.PERMISSIONS.get(key or "")
    if rule is None:
        raise RefusedError(403, "this endpoint has no permission entry: refused to everyone")
    der = _peer(request)
    if not rule.session:
        return None
    ctx = _ctx(request)
    session = ctx.sessions.get(request.cookies.get(COOKIE), access.fingerprint(der))
    if session is None:
        raise RefusedError(
            401, "no session or it expired: sign in again (POST /api/session)", signin=True
        )
    now = ctx.sessions.clock()
    if now - session.checked > identity.RECHECK:
        if not identity.still_valid(ctx.engine, session.actor):
            ctx.sessions.end(session.token)
            raise RefusedError(
                401, "the certificate was revoked or the account locked: session ended"
            )
        session.checked = now
    if not access.allowed(session.actor, key or ""):
        roles = ", ".join(sorted(session.actor.roles))
        raise RefusedError(403, f"{session.actor.staff_id} ({roles}) may not use {key}")
    if request.method not in _SAFE:
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get("csrf_token")
            given = value if isinstance(value, str) else None
        if not access.same_token(given, session.csrf):
            raise RefusedError(403, "CSRF token missing or wrong: reload the page and try again")
    request.state.session = session
    return session


Signed = Annotated[access.Session, Depends(authorise)]


def _actor(request: Request) -> Actor:
    session: access.Session = request.state.session
    return session.actor


def _scope(request: Request) -> queries.Scope:
    return access.scope(_actor(request))


def _community(request: Request, community: str | None) -> str | None:
    scope = _scope(request)
    if community is not None and scope is not None and community not in scope:
        raise RefusedError(403, f"community {community!r} is not one of yours", field="community")
    return community


def _sign_in(request: Request, via: str) -> access.Session:
    ctx = _ctx(request)
    der = _peer(request)
    cert = x509.load_der_x509_certificate(der)
    address = request.client.host if request.client else None
    try:
        actor = identity.actor_for_certificate(
            ctx.engine,
            cert,
            via=via,
            address=address,
            max_failed_logins=ctx.staff.max_failed_logins,
        )
    except identity.SignInRefused as exc:
        raise RefusedError(403, str(exc)) from None
    return ctx.sessions.start(actor, access.fingerprint(der))


def _set_session_cookie(response: Response, session: access.Session, ctx: Context) -> None:
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=int(ctx.sessions.lifetime.total_seconds()),
        secure=True,
        httponly=True,
        samesite="strict",
        path="/",
    )


# -- the API's models -------------------------------------------------------------------


class SessionOut(BaseModel):
    staff_id: str
    roles: list[str]
    communities: list[str]
    csrf_token: str
    idle_minutes: int


class Me(BaseModel):
    staff_id: str
    roles: list[str]
    communities: list[str] | None = Field(description="null: every community")


class ProposalIn(BaseModel):
    model_config = {"extra": "forbid"}
    kind: str = Field(min_length=1, max_length=32, description="one of central.proposals.KINDS")
    payload: dict[str, Any] = Field(description="the kind's fields (docs/proposals.md)")


class StepIn(BaseModel):
    model_config = {"extra": "forbid"}
    reason: str = Field(
        default="", max_length=500, pattern=PRINTABLE, description="required to reject"
    )
    otp: str | None = Field(
        default=None,
        pattern=OTP_CODE,
        description="the current 6-digit code of your authenticator app, or one of your "
        "recovery codes (ABCDE-FGHJK; case, dashes and spaces do not matter): needed to "
        "recheck or approve the kinds in [proposals] second_factor_kinds (bank_make, "
        "bank_send by default), ignored otherwise",
    )


class DecisionIn(BaseModel):
    model_config = {"extra": "forbid"}
    decision: str = Field(min_length=1, max_length=16)
    reason: str = Field(min_length=3, max_length=reviews.MAX_REASON, pattern=PRINTABLE)


def _me(session: access.Session) -> Me:
    scope = access.scope(session.actor)
    return Me(
        staff_id=session.actor.staff_id,
        roles=sorted(session.actor.roles),
        communities=None if scope is None else sorted(scope),
    )


# -- shared readers -----------------------------------------------------------------------


def _retirees_query(
    request: Request,
    state: queries.State | None,
    community: str | None,
    as_of: dt.date,
    after: str | None = None,
    split: bool = False,
) -> Any:
    """The list's query; ``split``: one per community of a coordinator's scope (each read in
    its index order; ``queries.retirees_page`` merges them)."""
    ctx = _ctx(request)
    run_id = None
    if state is queries.State.HELD:
        with ctx.reader.connect() as conn:
            run = queries.latest_run(conn)
        run_id = None if run is None else int(run.id)
    scope = _scope(request)
    community = _community(request, community)
    reminder = ctx.policy.reminder_days
    if split and community is None and scope is not None and len(scope) > 1:
        return [
            queries.retirees_query(state, name, as_of, reminder, scope, run_id, after)
            for name in sorted(scope)
        ]
    return queries.retirees_query(state, community, as_of, reminder, scope, run_id, after)


RETIREE_COLUMNS = ["id_number", "name", "community", "status", "certified_until"]
RESULT_COLUMNS = ["received_at", "retiree_id", "device_id", "channel", "method", "decision"]

# -- query parameters ---------------------------------------------------------------------

AsOf = Annotated[dt.date | None, Query(description="day the figures are for (default: today)")]
StateQ = Annotated[queries.State | None, Query(description="certified, due, overdue or held")]
CommunityQ = Annotated[
    str | None, Query(min_length=1, max_length=100, pattern=PRINTABLE, description="a community")
]
AfterQ = Annotated[str | None, Query(pattern=ID_AFTER, description="ID number to start after")]
LimitQ = Annotated[int, Query(ge=1, le=1000)]
PeriodQ = Annotated[str | None, Query(pattern=PERIOD, description="YYYY-MM (default: latest)")]
QueueP = Annotated[str, Path(min_length=1, max_length=24, pattern=r"^[a-z]+$")]
ItemP = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f-]+$")]
ProposalP = Annotated[int, Path(ge=1, le=2**62)]
DaysQ = Annotated[int, Query(ge=1, le=3660, description="how many days back")]
StepP = Annotated[Literal["recheck", "approve", "reject"], Path()]


def create_app(ctx: Context) -> FastAPI:
    """The console app over ``ctx``."""
    app = FastAPI(
        title="lifecert staff console",
        version="1",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(authorise)],
    )
    app.state.ctx = ctx

    def route(method: str, path: str, key: str, **kw: Any) -> Callable[[Any], Any]:
        return app.api_route(
            path,
            methods=[method],
            openapi_extra={"x-permission": key},
            include_in_schema=path.startswith("/api/"),
            **kw,
        )

    @app.exception_handler(RefusedError)
    async def refused(request: Request, exc: RefusedError) -> Response:
        if _is_api(request):
            return JSONResponse({"error": exc.message, "field": exc.field}, status_code=exc.status)
        if exc.signin and request.method in _SAFE:
            return RedirectResponse("/signin?" + urlencode({"next": request.url.path}), 303)
        return _page(
            request, "error.html", {"status": exc.status, "message": exc.message}, exc.status
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
            for e in exc.errors()
        ]
        first = exc.errors()[0]["loc"] if exc.errors() else ()
        name = str(first[-1]) if first else None
        message = "; ".join(problems)
        if _is_api(request):
            return JSONResponse({"error": message, "field": name}, status_code=422)
        return _page(request, "error.html", {"status": 422, "message": message}, 422)

    @app.exception_handler(proposals.ProposalError)
    async def proposal_invalid(request: Request, exc: proposals.ProposalError) -> Response:
        message = str(exc)
        field = message.split(":", 1)[0] if ":" in message[:40] else None
        return await refused(request, RefusedError(422, message, field=field))

    @app.exception_handler(proposals.RefusedError)
    async def proposal_refused(request: Request, exc: proposals.RefusedError) -> Response:
        field = "otp" if str(exc).startswith("otp:") else None
        return await refused(request, RefusedError(403, str(exc), field=field))

    @app.exception_handler(proposals.NotFoundError)
    async def proposal_missing(request: Request, exc: proposals.NotFoundError) -> Response:
        return await refused(request, RefusedError(404, str(exc), field="proposal_id"))

    @app.exception_handler(proposals.StaleError)
    async def proposal_stale(request: Request, exc: proposals.StaleError) -> Response:
        return await refused(request, RefusedError(409, str(exc)))

    @app.exception_handler(proposals.ClosedError)
    async def proposal_closed(request: Request, exc: proposals.ClosedError) -> Response:
        return await refused(request, RefusedError(409, str(exc)))

    @app.exception_handler(RosterError)
    @app.exception_handler(RegistryError)
    async def csv_invalid(request: Request, exc: RosterError | RegistryError) -> Response:
        return await refused(request, RefusedError(422, f"csv: {exc}", field="csv"))

    @app.exception_handler(reviews.ReviewError)
    async def review_refused(request: Request, exc: reviews.ReviewError) -> Response:
        return await refused(request, RefusedError(exc.status, str(exc), field=exc.field))

    def _page(request: Request, name: str, values: dict[str, Any], status: int = 200) -> Response:
        session = getattr(request.state, "session", None)
        return ctx.templates.TemplateResponse(
            request,
            name,
            {
                "session": session,
                "allowed": access.allowed,
                "may_enter": proposing.may_enter,
                **values,
            },
            status_code=status,
        )

    # -- sign in and out --------------------------------------------------------------

    @route("POST", "/api/session", "signin", response_model=SessionOut)
    def api_session(request: Request) -> Response:
        """Sign in with the staff certificate; returns the CSRF token for changes."""
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise RefusedError(415, "send Content-Type: application/json", field="content-type")
        session = _sign_in(request, "api")
        body = SessionOut(
            staff_id=session.actor.staff_id,
            roles=sorted(session.actor.roles),
            communities=sorted(session.actor.communities),
            csrf_token=session.csrf,
            idle_minutes=int(ctx.sessions.idle.total_seconds() // 60),
        )
        response = JSONResponse(body.model_dump())
        _set_session_cookie(response, session, ctx)
        return response

    @route("DELETE", "/api/session", "signout", status_code=204)
    def api_signout(request: Request, session: Signed) -> Response:
        """End the session."""
        ctx.sessions.end(session.token)
        response = Response(status_code=204)
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response

    @route("GET", "/signin", "signin", response_class=HTMLResponse)
    def signin_page(request: Request, next: str = "/") -> Response:
        cert = x509.load_der_x509_certificate(_peer(request))
        token = secrets.token_urlsafe(24)
        response = _page(
            request,
            "signin.html",
            {"subject": cert.subject.rfc4514_string(), "token": token, "next": _local(next)},
        )
        response.set_cookie(
            SIGNIN_COOKIE, token, max_age=600, secure=True, httponly=True, samesite="strict"
        )
        return response

    @route("POST", "/signin", "signin")
    def signin_post(
        request: Request,
        csrf_token: Annotated[str, Form(max_length=100)],
        next: Annotated[str, Form(max_length=200)] = "/",
    ) -> Response:
        if not access.same_token(request.cookies.get(SIGNIN_COOKIE), csrf_token):
            raise RefusedError(403, "CSRF token missing or wrong: reload the sign-in page")
        session = _sign_in(request, "console")
        home = next == "/" and not access.allowed(session.actor, "dashboard")
        if home and access.allowed(session.actor, "proposals"):
            next = "/proposals"  # an administrator's page: the staff proposals
        response = RedirectResponse(_local(next), 303)
        _set_session_cookie(response, session, ctx)
        response.delete_cookie(SIGNIN_COOKIE, secure=True, httponly=True, samesite="strict")
        return response

    @route("POST", "/signout", "signout")
    def signout_post(request: Request, session: Signed) -> Response:
        ctx.sessions.end(session.token)
        response = RedirectResponse("/signin", 303)
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response

    @route("GET", "/static/console.css", "static")
    def stylesheet() -> Response:
        css = resources.files("central.console").joinpath("templates/console.css").read_text()
        return Response(css, media_type="text/css")

    # -- JSON API ---------------------------------------------------------------------

    @route("GET", "/api/openapi.json", "openapi")
    def openapi_doc() -> JSONResponse:
        """This API's OpenAPI document."""
        return JSONResponse(get_openapi(title=app.title, version=app.version, routes=app.routes))

    @route("GET", "/api/me", "me", response_model=Me)
    def api_me(session: Signed) -> Me:
        """Who is signed in, their roles and the communities they see."""
        return _me(session)

    @route("GET", "/api/dashboard", "dashboard")
    def api_dashboard(request: Request, as_of: AsOf = None) -> Response:
        """Coverage (per community, per coordinator, trend), today's certifications, the
        month's payment run and open review items."""
        return web.json_response(figures.dashboard(ctx, _actor(request), as_of or ctx.today()))

    @route("GET", "/api/retirees", "retirees")
    def api_retirees(
        request: Request,
        state: StateQ = None,
        community: CommunityQ = None,
        after: AfterQ = None,
        limit: LimitQ = 100,
        as_of: AsOf = None,
    ) -> Response:
        """Drill-down: retirees in a state (and community), by ID number, a page at a time."""
        query = _retirees_query(request, state, community, as_of or ctx.today(), after, True)
        with ctx.reader.connect() as conn:
            rows = queries.retirees_page(conn, query, limit)
        return web.json_response(
            {"rows": rows, "next_after": rows[-1]["id_number"] if len(rows) == limit else None}
        )

    @route("GET", "/api/retirees.csv", "retirees", response_class=StreamingResponse)
    def api_retirees_csv(
        request: Request,
        state: StateQ = None,
        community: CommunityQ = None,
        as_of: AsOf = None,
    ) -> StreamingResponse:
        """The whole drill-down list as CSV (formulas neutralised)."""
        day = as_of or ctx.today()
        query = _retirees_query(request, state, community, day)
        rows = queries.stream(ctx.reader, query, ctx.settings.export_limit)
        name = f"retirees-{state.value if state else 'all'}-{day}.csv"
        return web.csv_response(rows, RETIREE_COLUMNS, name)

    @route("GET", "/api/certifications", "certifications")
    def api_certifications(
        request: Request,
        day: AsOf = None,
        channel: Channel | None = None,
        method: Method | None = None,
        limit: LimitQ = 100,
    ) -> dict[str, Any]:
        """Results received on a day (default today), newest first."""
        query = queries.certifications_query(
            day or ctx.today(),
            ctx.timezone,
            _scope(request),
            channel.value if channel else None,
            method.value if method else None,
        )
        with ctx.reader.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query.limit(limit))]
        return {"rows": rows}

    @route("GET", "/api/payments", "payments")
    def api_payments(period: PeriodQ = None) -> dict[str, Any]:
        """A payment run's counts and sums per decision and its arrears (default: latest)."""
        with ctx.reader.connect() as conn:
            run = queries.latest_run(conn, period)
            if run is None:
                raise RefusedError(404, f"no payment run for {period or 'any month'}", "period")
            found = queries.run_figures(conn, run)
        return found.as_json() | {"held_per_community": found.held}

    @route("GET", "/api/reviews/{queue}", "reviews")
    def api_reviews(queue: QueueP, limit: LimitQ = 100) -> dict[str, Any]:
        """The open items of a review queue, newest first."""
        with ctx.reader.connect() as conn:
            return {"queue": queue, "items": reviews.items(conn, queue, limit)}

    @route("POST", "/api/reviews/{queue}/{item}", "review_decide")
    def api_decide(
        request: Request, queue: QueueP, item: ItemP, body: DecisionIn
    ) -> dict[str, Any]:
        """Decide an open review item (``X-CSRF-Token`` header from ``POST /api/session``)."""
        return reviews.decide(ctx.engine, queue, item, body.decision, body.reason, _actor(request))

    @route("GET", "/api/audit", "audit")
    def api_audit(
        after: Annotated[int, Query(ge=0, description="entry id to start after")] = 0,
        limit: LimitQ = 100,
    ) -> dict[str, Any]:
        """Audit entries in chain order after entry ``after``."""
        with ctx.reader.connect() as conn:
            rows = figures.audit_rows(conn, after, limit)
        return {"entries": rows, "next_after": rows[-1]["id"] if len(rows) == limit else None}

    @route("GET", "/api/audit.csv", "audit", response_class=StreamingResponse)
    def api_audit_csv() -> StreamingResponse:
        """The whole audit chain as CSV, in chain order (hashes included: verify offline)."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return web.csv_response(audit.export(ctx.reader), list(audit.COLUMNS), f"audit-{stamp}.csv")

    @route("GET", "/api/audit/verify", "audit")
    def api_audit_verify() -> dict[str, Any]:
        """Walk the whole chain: ok with its length and head, or the first bad entry."""
        return figures.verify(ctx)

    @route("GET", "/api/proposals", "proposals")
    def api_proposals(
        request: Request,
        status: Annotated[str | None, Query(pattern=r"^[a-z]{1,12}$")] = None,
        limit: LimitQ = 100,
    ) -> Response:
        """Proposals waiting for a step the signed-in person may take (oldest first), and
        the latest proposals (``status`` only, when given)."""
        actor = _actor(request)
        waiting, latest = _proposals(ctx, actor, status, limit, limit)
        return web.json_response(
            {
                "waiting": [proposing.as_json(p, actor) for p in waiting],
                "latest": [proposing.as_json(p, actor) for p in latest],
            }
        )

    @route("GET", "/api/proposals/{proposal_id}", "proposals")
    def api_proposal(request: Request, proposal_id: ProposalP) -> Response:
        """One proposal with its steps and diff (the first ``page_size`` rows)."""
        found = _shown(ctx, _actor(request), proposal_id, "proposals")
        return web.json_response(proposing.as_json(found, _actor(request)))

    @route("POST", "/api/proposals", "proposal_enter", status_code=201)
    def api_propose(request: Request, body: ProposalIn) -> Response:
        """Enter a proposal (its first level); a roster import's CSV goes in ``payload.csv``
        (administrators: staff kinds only)."""
        payload = proposing.payload_from(body.kind, body.payload)
        _staff_kind_only(_actor(request), body.kind)
        made = proposals.propose(
            ctx.engine,
            _actor(request),
            body.kind,
            payload,
            settings=ctx.proposals,
            resources=ctx.resources,
        )
        reply = web.json_response(proposing.as_json(made, _actor(request)))
        reply.status_code = 201
        return reply

    # before /api/proposals/{proposal_id}/{action}: "resume" is no step
    @route("POST", "/api/proposals/{proposal_id}/resume", "proposal_resume")
    def api_proposal_resume(request: Request, proposal_id: ProposalP) -> Response:
        """Finish a proposal left ``applying`` past its lease (its applier died): by its last
        level's role, never its entrant; refused while the lease runs."""
        done = _resume(ctx, _actor(request), proposal_id)
        return web.json_response(proposing.as_json(done, _actor(request)))

    @route("POST", "/api/proposals/{proposal_id}/{action}", "proposal_decide")
    def api_proposal_step(
        request: Request, proposal_id: ProposalP, action: StepP, body: StepIn
    ) -> Response:
        """Recheck, approve (applies it after the last level) or reject (reason required)."""
        done = _step(ctx, _actor(request), proposal_id, action, body.reason, body.otp)
        return web.json_response(proposing.as_json(done, _actor(request)))

    @route("GET", "/api/assisted", "assisted")
    def api_assisted(days: DaysQ = 30) -> Response:
        """Assisted certifications of the last ``days`` days: share per staff member and per
        terminal, and the assisted passes the policy sent to review that wait for a decision."""
        found = assisted_share.report(ctx.reader, dt.datetime.now(dt.UTC) - dt.timedelta(days))
        waiting = proposals_assisted.referred(ctx.reader, ctx.settings.page_size)
        return web.json_response(
            {
                "since": found.since,
                "staff": found.staff,
                "terminals": found.terminals,
                "referred": waiting,
            }
        )

    def _reminded(request: Request, days: int, not_reacted: bool) -> list[dict[str, Any]]:
        since = dt.date.today() - dt.timedelta(days)
        with ctx.reader.connect() as conn:
            return reminders.report(
                conn, since, not_reacted, ctx.settings.page_size, _scope(request)
            )

    @route("GET", "/api/reminders", "reminders")
    def api_reminders(
        request: Request, days: DaysQ = 30, not_reacted: Annotated[bool, Query()] = False
    ) -> Response:
        """Reminders sent in the last ``days`` days to the retirees the signed-in person
        sees: stage, due date, delivery, and whether the retiree certified since."""
        return web.json_response({"days": days, "rows": _reminded(request, days, not_reacted)})

    def _terminals() -> list[dict[str, Any]]:
        trust = (
            fleet_alerts.read_trust(*ctx.fleet_files)
            if ctx.fleet_files is not None
            else fleet_alerts.Trust((), frozenset(), None)
        )
        return fleet_status.rows(ctx.reader, trust, ctx.silent_after_s)

    @route("GET", "/api/fleet", "fleet")
    def api_fleet() -> Response:
        """Each terminal's health (as ``lifecert-central fleet status``) and the open fleet
        alerts."""
        raised = fleet_alerts.list_alerts(ctx.reader, open_only=True, limit=200)
        return web.json_response({"terminals": _terminals(), "open_alerts": raised})

    # -- pages --------------------------------------------------------------------------

    @route("GET", "/reminders", "reminders", response_class=HTMLResponse)
    def page_reminders(
        request: Request, days: DaysQ = 30, not_reacted: Annotated[bool, Query()] = False
    ) -> Response:
        rows = _reminded(request, days, not_reacted)
        silent = sum(not r["reacted"] for r in rows)
        values = {"rows": rows, "days": days, "not_reacted": not_reacted, "silent": silent}
        return _page(request, "reminders.html", values)

    @route("GET", "/fleet", "fleet", response_class=HTMLResponse)
    def page_fleet(request: Request) -> Response:
        terminals = _terminals()
        raised = fleet_alerts.list_alerts(ctx.reader, open_only=True, limit=200)
        counts: dict[str, int] = {}
        for t in terminals:
            counts[t["state"]] = counts.get(t["state"], 0) + 1
        values = {"terminals": terminals, "alerts": raised, "counts": counts}
        return _page(request, "fleet.html", values)

    @route("GET", "/assisted", "assisted", response_class=HTMLResponse)
    def page_assisted(request: Request, days: DaysQ = 30) -> Response:
        found = assisted_share.report(ctx.reader, dt.datetime.now(dt.UTC) - dt.timedelta(days))
        waiting = proposals_assisted.referred(ctx.reader, ctx.settings.page_size)
        return _page(request, "assisted.html", {"report": found, "referred": waiting, "days": days})

    @route("GET", "/proposals", "proposals", response_class=HTMLResponse)
    def page_proposals(request: Request) -> Response:
        actor = _actor(request)
        waiting, latest = _proposals(ctx, actor, None, ctx.settings.page_size, 20)
        return _page(
            request,
            "proposals.html",
            {"waiting": waiting, "latest": latest, "kinds": _menu(actor)},
        )

    def _entry_form(
        request: Request,
        kind: str,
        values: dict[str, list[str]],
        errors: dict[str, str],
        status: int = 200,
    ) -> Response:
        """The kind's form (``values`` kept, ``errors`` by input name, ``""``: the form's)."""
        handler = proposals.KINDS[kind]
        return _page(
            request,
            "proposal_new.html",
            {
                "kind": kind,
                "title": proposing.title(kind),
                "about": proposing.about(kind),
                "fields": [(proposing.input_name(f), f) for f in handler.fields],
                "values": values,
                "errors": errors,
                "kinds": _menu(_actor(request)),
            },
            status,
        )

    # before /proposals/{proposal_id}: "new" is no proposal id
    @route("GET", "/proposals/new", "proposal_enter", response_class=HTMLResponse)
    def page_new_proposal(
        request: Request,
        kind: Annotated[
            str | None, Query(min_length=1, max_length=32, pattern=r"^[a-z_]+$")
        ] = None,
    ) -> Response:
        """The kinds the signed-in person may enter, and ``kind``'s form, filled in from the
        query's values of its fields (``&result_id=...``: a link from another page)."""
        if kind is None:
            return _page(
                request, "proposal_new.html", {"kind": None, "kinds": _menu(_actor(request))}
            )
        _enterable(_actor(request), kind)
        given = {
            name: request.query_params.getlist(name)[:100]
            for name in map(proposing.input_name, proposals.KINDS[kind].fields)
            if name in request.query_params
        }
        return _entry_form(request, kind, given, {})

    async def _form(request: Request) -> FormData:
        return await request.form()

    @route("POST", "/proposals", "proposal_enter")
    def page_propose(request: Request, form: Annotated[FormData, Depends(_form)]) -> Response:
        """A kind's form entered: the proposal, or the form again with the values kept and
        the message next to the field it names (nothing is entered then)."""
        kind = form.get("proposal_kind")  # not "kind": a registry import has a "kind" field
        if not isinstance(kind, str) or not kind:
            raise RefusedError(422, "proposal_kind: choose the kind", field="proposal_kind")
        actor = _actor(request)
        _enterable(actor, kind)
        values = {
            name: [v for v in form.getlist(name) if isinstance(v, str)]
            for name in form
            if name not in ("csrf_token", "proposal_kind")
        }
        try:
            csv_text = _upload(form)
            payload = proposing.payload_from_form(kind, values, csv_text)
            made = proposals.propose(
                ctx.engine,
                actor,
                kind,
                payload,
                settings=ctx.proposals,
                resources=ctx.resources,
            )
        except (RosterError, RegistryError) as exc:
            return _entry_form(request, kind, values, {"csv": f"csv: {exc}"}, 422)
        except proposals.ProposalError as exc:
            return _fix(request, kind, values, str(exc), 422)
        except proposals.RefusedError as exc:
            return _fix(request, kind, values, str(exc), 403)
        except RefusedError as exc:
            return _fix(request, kind, values, exc.message, exc.status)
        return RedirectResponse(f"/proposals/{made.id}", 303)

    def _fix(
        request: Request, kind: str, values: dict[str, list[str]], message: str, status: int
    ) -> Response:
        field = proposing.field_of(kind, message)
        return _entry_form(request, kind, values, {field or "": message}, status)

    def _upload(form: FormData) -> str | None:
        """The uploaded CSV's text (None: no file chosen)."""
        upload = form.get("csv")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return None
        raw = upload.file.read(ctx.settings.max_body_bytes + 1)
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise RefusedError(422, "csv: not UTF-8 text: save it as UTF-8 CSV", "csv") from None

    @route("GET", "/proposals/{proposal_id}", "proposals", response_class=HTMLResponse)
    def page_proposal(
        request: Request,
        proposal_id: ProposalP,
        recovery_used: Annotated[bool, Query()] = False,
    ) -> Response:
        """A proposal, its steps and yours; ``recovery_used``: your step just took a
        recovery code (the page says how many you have left, read from the database, so a
        made-up link cannot show a made-up count)."""
        actor = _actor(request)
        found = _shown(ctx, actor, proposal_id, "proposals")
        left = otp.recovery_left(ctx.engine, actor.staff_id) if recovery_used else None
        return _page(
            request,
            "proposal.html",
            {
                "p": found,
                "steps_you_may": proposing.next_steps(found, _actor(request)),
                "may_resume": proposing.may_resume(found, _actor(request), dt.datetime.now(dt.UTC)),
                "needs_code": found.kind in ctx.proposals.second_factor_kinds,
                "recovery_left": left,
                "recovery_low": otp.low_note(actor.staff_id, left),
            },
        )

    @route("POST", "/proposals/{proposal_id}/resume", "proposal_resume")
    def page_proposal_resume(request: Request, proposal_id: ProposalP) -> Response:
        _resume(ctx, _actor(request), proposal_id)
        return RedirectResponse(f"/proposals/{proposal_id}", 303)

    @route("POST", "/proposals/{proposal_id}/{action}", "proposal_decide")
    def page_proposal_step(
        request: Request,
        proposal_id: ProposalP,
        action: StepP,
        reason: Annotated[str, Form(max_length=500)] = "",
        otp: Annotated[str, Form(max_length=20)] = "",
    ) -> Response:
        done = _step(ctx, _actor(request), proposal_id, action, reason, otp or None)
        used = "" if done.recovery_codes_left is None else "?recovery_used=true"
        return RedirectResponse(f"/proposals/{proposal_id}{used}", 303)

    @route("GET", "/audit", "audit", response_class=HTMLResponse)
    def page_audit(
        request: Request,
        verify: Annotated[bool, Query()] = False,
        after: Annotated[int | None, Query(ge=0)] = None,
    ) -> Response:
        size = ctx.settings.page_size
        with ctx.reader.connect() as conn:
            if after is None:
                last = conn.scalar(sa.select(sa.func.max(audit_log.c.id))) or 0
                after = max(0, int(last) - size)
            rows = figures.audit_rows(conn, after, size)
        return _page(
            request,
            "audit.html",
            {
                "rows": rows,
                "checked": figures.verify(ctx) if verify else None,
                "earlier": max(0, after - size) if after else None,
            },
        )

    @route("GET", "/", "dashboard", response_class=HTMLResponse)
    def page_dashboard(request: Request, as_of: AsOf = None) -> Response:
        data = figures.dashboard(ctx, _actor(request), as_of or ctx.today())
        shown = [r for r in data["coverage"] if r["name"] != "TOTAL"]
        coverage_chart = charts.stacked_bars(
            [
                (
                    r["name"],
                    [
                        ("certified", r["certified"] - r["due"]),
                        ("due", r["due"]),
                        ("overdue", r["overdue"]),
                    ],
                )
                for r in shown
            ],
            f"Coverage per community on {data['as_of']}",
        )
        trend_chart = charts.line(
            [(t["month"], t["certified_pct"]) for t in data["trend"]], "Certified share by month"
        )
        channels: dict[str, int] = {}
        for row in data["today"]:
            if row["decision"] == "pass":
                key = f"{row['channel']} / {row['method']}"
                channels[key] = channels.get(key, 0) + row["count"]
        today_chart = charts.stacked_bars(
            [(k, [("certified", v)]) for k, v in sorted(channels.items())],
            f"Certifications on {data['as_of']} by channel and method",
        )
        return _page(
            request,
            "dashboard.html",
            {
                "data": data,
                "coverage_chart": coverage_chart,
                "trend_chart": trend_chart,
                "today_chart": today_chart,
                "queues": reviews.QUEUES,
            },
        )

    @route("GET", "/retirees", "retirees", response_class=HTMLResponse)
    def page_retirees(
        request: Request,
        state: StateQ = None,
        community: CommunityQ = None,
        after: AfterQ = None,
        as_of: AsOf = None,
    ) -> Response:
        day = as_of or ctx.today()
        query = _retirees_query(request, state, community, day, after, True)
        size = ctx.settings.page_size
        with ctx.reader.connect() as conn:
            rows = queries.retirees_page(conn, query, size)
        filters = {
            k: v
            for k, v in {
                "state": state.value if state else None,
                "community": community,
                "as_of": as_of.isoformat() if as_of else None,
            }.items()
            if v
        }
        more = urlencode(filters | {"after": rows[-1]["id_number"]}) if len(rows) == size else None
        return _page(
            request,
            "retirees.html",
            {
                "rows": rows,
                "filters": filters,
                "states": list(queries.State),
                "csv_link": "/api/retirees.csv?" + urlencode(filters),
                "next_link": f"/retirees?{more}" if more else None,
            },
        )

    @route("GET", "/certifications", "certifications", response_class=HTMLResponse)
    def page_certifications(
        request: Request,
        day: AsOf = None,
        channel: Channel | None = None,
        method: Method | None = None,
    ) -> Response:
        shown = day or ctx.today()
        query = queries.certifications_query(
            shown,
            ctx.timezone,
            _scope(request),
            channel.value if channel else None,
            method.value if method else None,
        )
        with ctx.reader.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query.limit(ctx.settings.page_size))]
        return _page(request, "certifications.html", {"rows": rows, "day": shown})

    @route("GET", "/payments", "payments", response_class=HTMLResponse)
    def page_payments(request: Request, period: PeriodQ = None) -> Response:
        with ctx.reader.connect() as conn:
            run = queries.latest_run(conn, period)
            shown = None if run is None else queries.run_figures(conn, run)
        return _page(request, "payments.html", {"figures": shown, "period": period})

    @route("GET", "/reviews", "reviews", response_class=HTMLResponse)
    def page_reviews(request: Request) -> Response:
        size = ctx.settings.page_size
        with ctx.reader.connect() as conn:
            queues = {name: reviews.items(conn, name, size) for name in reviews.QUEUES}
        actor = _actor(request)
        waiting = (
            proposals.list_for(ctx.engine, actor, size)
            if access.allowed(actor, "proposals")
            else []
        )
        return _page(
            request,
            "reviews.html",
            {"queues": queues, "defs": reviews.QUEUES, "proposals": waiting},
        )

    @route("POST", "/reviews/{queue}/{item}", "review_decide")
    def page_decide(
        request: Request,
        queue: QueueP,
        item: ItemP,
        decision: Annotated[str, Form(min_length=1, max_length=16)],
        reason: Annotated[str, Form(max_length=reviews.MAX_REASON)] = "",
        csrf_token: Annotated[str, Form(max_length=100)] = "",
    ) -> Response:
        del csrf_token  # checked by authorise
        reviews.decide(ctx.engine, queue, item, decision, reason, _actor(request))
        return RedirectResponse("/reviews", 303)

    return app


def _staff_kind_only(actor: Actor, kind: str) -> None:
    """Refuse an administrator (``staff_only`` on ``proposal_enter``) any kind but staff."""
    if access.staff_only(actor, "proposal_enter") and kind not in STAFF_KINDS:
        raise RefusedError(
            403,
            f"kind: {actor.staff_id} enters staff proposals only, not {kind}",
            field="kind",
        )


def _enterable(actor: Actor, kind: str) -> None:
    """Refuse a kind that is none (422) or that ``actor`` may not enter (403)."""
    if kind not in proposals.KINDS:
        raise RefusedError(
            422, f"kind: {kind!r} is not a kind: use one of {', '.join(proposals.KINDS)}", "kind"
        )
    _staff_kind_only(actor, kind)
    if not proposing.may_enter(actor, kind):
        roles = ", ".join(sorted(actor.roles))
        raise RefusedError(403, f"kind: {actor.staff_id} ({roles}) may not enter {kind}", "kind")


def _menu(actor: Actor) -> list[tuple[str, str]]:
    """(kind, title) of the kinds ``actor`` may enter."""
    return [(kind, proposing.title(kind)) for kind in proposing.enterable(actor)]


def _proposals(
    ctx: Context, actor: Actor, status: str | None, waiting: int, latest: int
) -> tuple[list[Any], list[Any]]:
    """What waits for ``actor`` and the latest proposals (``status`` only, when given):
    staff proposals only for an administrator."""
    kinds = STAFF_KINDS if access.staff_only(actor, "proposals") else None
    mine = proposals.list_for(ctx.engine, actor, waiting)
    if kinds is not None:
        mine = [p for p in mine if p.kind in kinds]
    return mine, proposals.list_all(ctx.engine, status, latest, kinds)


def _shown(ctx: Context, actor: Actor, proposal_id: int, endpoint: str) -> Any:
    """Proposal ``proposal_id`` (its diff's first ``page_size`` rows), if ``actor`` may use
    ``endpoint`` on it: an administrator only on staff proposals (403 otherwise)."""
    found = proposals.show(ctx.engine, proposal_id, ctx.settings.page_size)
    if access.staff_only(actor, endpoint) and found.kind not in STAFF_KINDS:
        raise RefusedError(
            403,
            f"proposal {proposal_id} is a {found.kind} proposal: {actor.staff_id} sees and "
            "decides staff proposals only",
            field="proposal_id",
        )
    return found


def _step(
    ctx: Context, actor: Actor, proposal_id: int, action: str, reason: str, code: str | None
) -> Any:
    _shown(ctx, actor, proposal_id, "proposal_decide")
    if action == "reject":
        return proposals.reject(ctx.engine, actor, proposal_id, reason)
    step = proposals.approve if action == "approve" else proposals.recheck
    return step(ctx.engine, actor, proposal_id, reason, code=code, resources=ctx.resources)


def _resume(ctx: Context, actor: Actor, proposal_id: int) -> Any:
    _shown(ctx, actor, proposal_id, "proposal_resume")
    return proposals.resume(ctx.engine, actor, proposal_id, resources=ctx.resources)


def _local(target: str) -> str:
    """``target`` if it is a path on this site, else ``/`` (no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def build(
    engine: Engine,
    reader: Engine,
    settings: ConsoleSettings,
    policy: Policy,
    staff: StaffSettings,
    proposal_settings: ProposalSettings | None = None,
    central: Resources | None = None,
    silent_after_s: float = 180.0,
    fleet_files: tuple[pathlib.Path, pathlib.Path] | None = None,
) -> FastAPI:
    """The console app with its body limit, ready for ``central.console.server``;
    ``central`` (central's config and keys) lets approvals apply the bank kinds;
    ``fleet_files`` (``[fleet] devices_dir``, ``crl_file``): the enrolled terminals."""
    templates = Jinja2Templates(
        directory=str(resources.files("central.console").joinpath("templates"))
    )
    sessions = access.Sessions(
        idle=dt.timedelta(minutes=staff.session_minutes),
        lifetime=dt.timedelta(hours=settings.session_max_hours),
    )
    fresh = Fresh(settings.dashboard_cache_s)
    app = create_app(
        Context(
            engine,
            reader,
            settings,
            policy,
            staff,
            sessions,
            templates,
            fresh,
            proposal_settings or ProposalSettings(),
            central,
            silent_after_s,
            fleet_files=fleet_files,
        )
    )
    app.add_middleware(web.BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(web.SecurityHeaders)
    return app
