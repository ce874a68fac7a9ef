"""Routes: TF Serving's REST API under ``/v1/``, the pages under ``/`` and ``/models/NAME``.

Every error is ``{"error": "..."}`` with a 4xx code for what the client sent and 5xx for
the server's own failures; no error stops the server.
"""

from __future__ import annotations

import html
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from seqapps.core.bounds import of as held_to
from seqapps.http import costs, rest
from seqapps.http.batching import Batching
from seqapps.http.models import NAME, Store
from seqapps.http.rest import RestError

PAGES = Path(__file__).with_name("pages")
URL = re.compile(r"^/v1/models/(?P<name>[^/:]*)(?:/versions/(?P<version>[^/:]*)|/labels/(?P<label>[^/:]*))?"
                 r"(?P<verb>/metadata|:predict|:classify|:regress)?/?$")


def error(message: str, status: int = 400) -> Response:
    return Response(json.dumps({"error": message}), status_code=status, media_type="application/json")


def create_app(store: Store, batching: Batching, max_body: int = 10_000_000, bounds: dict | None = None):
    """The ASGI app: TF Serving's REST API under ``/v1/``, answered without a framework in the way
    (it is the hot path: per request, only what the answer needs), and the pages through Starlette.
    ``bounds`` lowers the exports' bounds (:mod:`seqapps.http.costs`) for every request."""

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await api(scope, receive, send)
        else:
            await pages(scope, receive, send)

    async def api(scope, receive, send):
        try:
            status, answer = 200, await _api(scope, receive)
        except RestError as e:
            status, answer = e.status, {"error": str(e)}
        except Exception as e:  # the server's own failure: say so, keep serving
            print(f"error serving {scope['path']}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            status, answer = 500, {"error": f"internal error: {type(e).__name__}: {_first_line(e)}"}
        body = json.dumps(answer, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    async def _api(scope, receive):
        method, path = scope["method"], scope["path"]
        match = URL.match(path)
        if not match:
            raise RestError(f"no such endpoint: {method} {path}; see /v1/models/NAME, "
                            "/v1/models/NAME/metadata and POST /v1/models/NAME:predict", 404)
        name, version, label, verb = match.group("name", "version", "label", "verb")
        model = _model(name, version, label)
        if verb in (None, "/metadata"):
            if method != "GET":
                raise RestError(f"{path} answers GET, not {method}", 405)
            if verb is None:
                return rest.model_status(model, store.loading.get(name))
            return rest.model_metadata(model, version is not None)
        if method != "POST":
            raise RestError(f"{path} answers POST, not {method}", 405)
        if verb != ":predict":
            raise RestError(f"{verb[1:]} needs a classification or regression signature; seqapps exports have "
                            "predict signatures: use :predict", 400)
        batching.arriving += 1
        try:
            body = await _read_json(scope, receive)
            sig, arrays, fmt = _parse(model, body)
        finally:
            batching.arriving -= 1
        if model.limits is None:
            model.limits = held_to(model.metadata, bounds)
        cost = costs.cost_of(arrays)
        why = costs.over(cost, model.limits)
        if why is not None:
            raise RestError(f"invalid input: {why}", 400)
        outputs = await _call(model, sig, arrays, cost)
        return rest.format_predict(outputs, fmt)

    def _parse(model, body):
        sig_name = body.get("signature_name", "serving_default") if isinstance(body, dict) else "serving_default"
        if not isinstance(sig_name, str) or sig_name not in model.signatures:
            raise RestError(f"model {model.name!r} has no signature {sig_name!r}; its signatures are: "
                            f"{', '.join(model.signatures)}", 400)
        sig = model.signatures[sig_name]
        return (sig, *rest.parse_predict(body, sig))

    def _model(name: str, version: str | None, label: str | None):
        if not NAME.match(name) or ".." in name:
            raise RestError(f"{name!r} is not a model name: names are letters, digits, '_', '-' and '.', "
                            "starting with a letter or digit", 400)
        model = store.get(name)
        if model is None:
            serving = ", ".join(sorted(store.models.copy())) or "none"
            raise RestError(f"no model named {name!r}; serving: {serving}", 404)
        if label is not None:
            raise RestError(f"model {name!r} has no version label {label!r}: versions here have numbers only", 404)
        if version is not None and version != str(model.version):
            raise RestError(f"model {name!r} has no version {version!r}; serving version {model.version}", 404)
        return model

    async def _read_json(scope, receive):
        """The body as JSON. One over the limit is read on (and dropped) up to 4 times the limit, so
        a client that sends all of it before reading still gets the 413; beyond that, it is cut off."""
        length = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        if length.isdigit() and int(length) > 4 * max_body:
            raise RestError(f"the request body is {int(length)} bytes; the limit is {max_body}", 413)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RestError("the client disconnected before the request was read", 400)
            chunk, more = message.get("body", b""), message.get("more_body", False)
            size += len(chunk)
            if size > 4 * max_body:
                break
            if size <= max_body:
                chunks.append(chunk)
        if size > max_body:
            raise RestError(f"the request body is over the limit of {max_body} bytes", 413)
        try:
            text = b"".join(chunks).decode("utf-8")
        except UnicodeDecodeError as e:
            raise RestError(f"the request body is not valid UTF-8 (byte {e.start})") from None
        try:
            body = json.loads(text)
        except RecursionError:
            raise RestError("the request body is nested too deeply") from None
        except ValueError as e:
            raise RestError(f"the request body is not valid JSON: {e}") from None
        return body

    async def _call(model, sig, arrays, cost):
        import tensorflow as tf

        from seqapps.inference import checks

        try:
            return await batching.call(model, sig, arrays, rest.rows_of(arrays), cost, model.limits)
        except tf.errors.InvalidArgumentError as e:  # the graph's own reason, as the Python predictor gives it
            text = checks.reason(e)
            raise RestError(text if text.startswith(checks.PREFIX) else f"the model rejected the input: {text}",
                            400) from None
        except tf.errors.OpError as e:
            raise RestError(f"the model failed: {checks.reason(e)}", 500) from None

    async def index(request: Request) -> Response:
        items = "\n".join(
            f'<li><a href="/models/{html.escape(n)}">{html.escape(n)}</a> <span class="muted">'
            f'{html.escape(str(m.metadata.get("task", "")))} · version {m.version} · '
            f'{html.escape(str(m.metadata.get("description", "")))}</span></li>'
            for n, m in sorted(store.models.copy().items()))  # a copy: the watcher may change it
        page = (PAGES / "index.html").read_text().replace("{{models}}", items or "<li>no exports found</li>")
        return HTMLResponse(page)

    async def model_page(request: Request) -> Response:
        name = request.path_params["name"]
        if store.get(name) is None:
            return HTMLResponse(f"<h1>No model named {html.escape(name)}</h1><p><a href='/'>models</a></p>", 404)
        return FileResponse(PAGES / "model.html")

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return error(f"no such endpoint: {request.method} {request.url.path}", exc.status_code)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(batching.prometheus())

    routes = [Route("/", index), Route("/models/{name}", model_page),
              Route("/monitoring/prometheus/metrics", metrics),
              Mount("/static", StaticFiles(directory=PAGES), name="static")]
    pages = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    return app


def _first_line(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:500] if text else type(e).__name__


def serve(args) -> None:
    import uvicorn

    from seqapps.core.errors import ExportError
    from seqapps.http.protocol import JoinedWritesProtocol

    root = Path(args.path)
    if not root.exists():
        raise ExportError(f"{root}: no such folder")
    import tensorflow as tf

    # TF Serving's --tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism, set before
    # anything runs. By default one op uses one thread, and ops (of --threads calls at once) run one
    # per core: for these models' small ops, calls side by side beat one call spread over the cores
    # (benchmarks/serving.py). Where TensorFlow already runs in this process, its pools stay.
    try:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    except RuntimeError:
        pass
    store = Store(root, log=lambda line: print(line, flush=True))
    store.refresh()
    if not store.models:
        why = "; ".join(f"{name}: {e}" for name, e in sorted(store.errors.items()))
        raise ExportError(f"{root}: " + (f"no export could be loaded ({why})" if why else
                                         "no exports found (expected saved_model.pb in it or in its folders)"))
    if args.poll_seconds > 0:
        store.watch(args.poll_seconds)
    executor = ThreadPoolExecutor(max(1, args.threads), thread_name_prefix="seqapps-model")
    batching = Batching(executor, args.batching == "on", args.max_batch_size, args.batch_timeout_ms,
                        concurrent=args.threads)
    app = create_app(store, batching, int(args.max_body_mb * 1_000_000), dict(getattr(args, "bound", None) or []))
    print(f"listening on http://{args.host}:{args.port}/ (batching {args.batching}); Ctrl-C stops", flush=True)
    # No proxy-headers middleware: nothing here reads the client's address, and it costs every request.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                http=JoinedWritesProtocol, proxy_headers=False)
    store.stop()
    executor.shutdown(wait=False, cancel_futures=True)
