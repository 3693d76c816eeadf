"""The Gradio 6 app: Leaderboard, Compare, Speed vs fidelity, Variant, Jobs.

A thin layer over ``tables`` and ``plots``: each callback reads a snapshot of the store
(``data.load``, cached for a few seconds so one page load is one read) and builds its view.
It never loads a model. The only writes are the Jobs tab's form, through
``registry.api.register_variant`` and ``jobs.queue.submit``.
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import pandas as pd

from ssmboard.errors import SsmboardError
from ssmboard.leaderboard import data as board_data
from ssmboard.leaderboard import plots, tables

CACHE_SECONDS = 30.0  # the "Reload from the store" button reads at once
EMPTY_HELP = """### No results yet

This store (`{where}`) has no results to rank. To put a first variant on the board:

1. **Register** a variant, in Python — `from ssmboard import register_variant; register_variant("my-c128", scan="reference", chunk_size=128)` —
   on the command line — `ssmboard variants register my-c128 --scan reference --chunk-size 128` — or with the form in the **Jobs** tab.
2. **Evaluate** it: `ssmboard eval my-c128 --suite quick` (a few seconds on a CPU), or `make demo` for two built-in variants.
3. **Reload** this page.
"""


class _Snapshot:
    """The last read of the store, reused for CACHE_SECONDS: a page load fires several callbacks and
    every filter change re-ranks, and reading 10,000 rows takes seconds while ranking them takes
    a fraction of one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: board_data.BoardData | None = None
        self._at = 0.0

    def get(self, fresh: bool = False) -> board_data.BoardData:
        with self._lock:
            if fresh or self._data is None or time.monotonic() - self._at > CACHE_SECONDS:
                self._data = board_data.load()
                self._at = time.monotonic()
            return self._data


def _where() -> str:
    from ssmboard.db.engine import get_store, redact

    store = get_store()
    return str(store.path) if store.path else redact(store.url)


def _int(v: Any) -> int | None:
    return None if v in (None, "", "any") else int(v)


def build_app():
    """The Blocks app over the store that ``SSMBOARD_DB`` / ``SSMBOARD_HOME`` name."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from ssmboard.extras import require

    gr = require("gradio", "board", "the leaderboard app")
    snap = _Snapshot()

    def selection(device, prompt_len, batch, metric, model, backend, chunk, dtype, compile_, decoder, search,
                  groups, sort_by, order) -> tables.Selection:
        filters = {"model": model or [], "backend": backend or [], "chunk_size": chunk or [], "dtype": dtype or [],
                   "compile": compile_ or [], "decoder": decoder or []}
        desc = {"ascending": False, "descending": True}.get(order)
        return tables.Selection(device=device or None, prompt_len=_int(prompt_len), batch=_int(batch),
                                metric=metric or None, filters=filters, search=search or "",
                                groups=tuple(groups or ()), sort_by=None if sort_by in (None, "", "rank") else sort_by,
                                descending=desc)

    # -- Leaderboard ------------------------------------------------------------------------
    def board(device, prompt_len, batch, metric, model, backend, chunk, dtype, compile_, decoder, search, groups,
              sort_by, order, fresh=False):
        d = snap.get(fresh)
        if d.empty:
            hide = gr.update(visible=False)
            return ([EMPTY_HELP.format(where=_where()), hide] + [gr.update()] * 4 + [gr.update()] * 6
                    + [gr.update(), ""])
        opts = tables.context_options(d.results, device or None)
        device = device if device in opts["device"] else None
        if _int(prompt_len) not in opts["prompt_len"]:
            prompt_len = None
        if _int(batch) not in opts["batch"]:
            batch = None
        sel = selection(device, prompt_len, batch, metric, model, backend, chunk, dtype, compile_, decoder, search,
                        groups, sort_by, order)
        try:
            r = tables.ranking(d.results, d.variants, sel, items_for=d.items_for)
        except tables.BoardError:  # e.g. the metric is not measured at the new context: rank by the default
            sel = tables.Selection(**{**sel.__dict__, "metric": None, "sort_by": None})
            r = tables.ranking(d.results, d.variants, sel, items_for=d.items_for)
        ctx = r.context
        opts = tables.context_options(d.results, ctx["device"])
        fopts = tables.filter_options(d.variants)
        metric_choices = [(c.header, c.key) for c in r.columns]
        sort_choices = [("rank", "rank"), ("variant", "variant")] + metric_choices + [
            (h, f) for f, h in tables.SPEC_COLUMNS.items()]
        notes = "\n\n".join(r.notes) + f"\n\n<small>{tables.LEGEND}</small>"
        return [notes, gr.update(value=r.display, visible=True),
                gr.update(choices=opts["device"], value=ctx["device"]),
                gr.update(choices=[str(v) for v in opts["prompt_len"]],
                          value=None if ctx["prompt_len"] is None else str(ctx["prompt_len"])),
                gr.update(choices=[str(v) for v in opts["batch"]],
                          value=None if ctx["batch"] is None else str(ctx["batch"])),
                gr.update(choices=metric_choices, value=r.metric)] + [
                gr.update(choices=fopts[k]) for k in tables.FILTERS] + [
                gr.update(choices=sort_choices), " · ".join(r.order)]

    with gr.Blocks(title="ssmboard leaderboard", analytics_enabled=False) as app:
        gr.Markdown("# ssmboard\nSSM (Mamba2 / SSD) scan-kernel variants, ranked on stored measurements.")
        with gr.Tabs():
            with gr.Tab("Leaderboard", id="leaderboard"):
                with gr.Row():
                    device = gr.Dropdown(label="device", choices=[], elem_id="device")
                    prompt_len = gr.Dropdown(label="prompt length", choices=[], elem_id="prompt-len")
                    batch = gr.Dropdown(label="batch", choices=[], elem_id="batch")
                    metric = gr.Dropdown(label="rank by", choices=[], elem_id="rank-by")
                with gr.Row():
                    f_widgets = [gr.Dropdown(label=name.replace("_", " "), choices=[], multiselect=True,
                                             elem_id=f"filter-{name}") for name in tables.FILTERS]
                with gr.Row():
                    search = gr.Textbox(label="search", placeholder="name, backend, tag, fingerprint...",
                                        elem_id="search")
                    groups = gr.CheckboxGroup(label="columns", choices=list(tables.GROUPS),
                                              value=list(tables.DEFAULT_GROUPS), elem_id="groups")
                    sort_by = gr.Dropdown(label="sort by", choices=["rank"], value="rank", elem_id="sort-by")
                    order = gr.Radio(label="order", choices=["best first", "ascending", "descending"],
                                     value="best first", elem_id="order")
                notes = gr.Markdown(elem_id="board-notes")
                table = gr.Dataframe(interactive=False, wrap=True, max_height=640, elem_id="board-table",
                                     show_search="search")
                order_text = gr.Textbox(label="variants in the order shown", interactive=False, elem_id="board-order",
                                        visible=True, lines=1)
                refresh = gr.Button("Reload from the store", size="sm")
            inputs = [device, prompt_len, batch, metric, *f_widgets, search, groups, sort_by, order]
            outputs = [notes, table, device, prompt_len, batch, metric, *f_widgets, sort_by, order_text]
            for w in [device, prompt_len, batch, metric, *f_widgets, groups, sort_by, order]:
                w.input(board, inputs, outputs)
            search.change(board, inputs, outputs)
            refresh.click(lambda *a: board(*a, fresh=True), inputs, outputs)

            # -- Compare ----------------------------------------------------------------------
            with gr.Tab("Compare", id="compare"):
                gr.Markdown("Pick 2 to 4 variants. Differences are against the **first** one, at the leaderboard's "
                            "device, prompt length and batch, with their 95% interval (paired bootstrap over item "
                            "scores where both have them, else from the stored standard errors).")
                with gr.Row():
                    cmp_names = gr.Dropdown(label="variants (2-4)", multiselect=True, max_choices=4, choices=[],
                                            elem_id="compare-variants")
                    cmp_metric = gr.Dropdown(label="plotted metric", choices=[], elem_id="compare-metric")
                    cmp_go = gr.Button("Compare", variant="primary", elem_id="compare-go")
                cmp_msg = gr.Markdown(elem_id="compare-msg")
                cmp_table = gr.Dataframe(interactive=False, wrap=True, elem_id="compare-table")
                with gr.Row():
                    cmp_chunk = gr.Plot(label="against chunk size", elem_id="plot-chunk")
                    cmp_len = gr.Plot(label="against prompt length", elem_id="plot-length")
                cmp_kl = gr.Plot(label="fidelity along the sequence", elem_id="plot-kl")

            def compare(names, plot_metric, device_v, prompt_v, batch_v):
                d = snap.get()
                names = list(names or [])
                all_names = list(d.variants["name"])
                perf_metrics = sorted(set(d.results.loc[d.results["evaluator"] == "perf", "metric"])
                                      - {tables.OOM_METRIC})
                upd_names = gr.update(choices=all_names)
                upd_metric = gr.update(choices=perf_metrics,
                                       value=plot_metric or ("ttft" if "ttft" in perf_metrics else
                                                             next(iter(perf_metrics), None)))
                if d.empty:
                    return [upd_names, upd_metric, "No results in the store yet.", None, None, None, None]
                ctx = tables.resolve_context(d.results, tables.Selection(
                    device=device_v or None, prompt_len=_int(prompt_v), batch=_int(batch_v)))
                if not names:  # first visit: the two best of the leaderboard
                    names = tables.ranking(d.results, d.variants, tables.Selection(**ctx)).order[:2]
                    upd_names = gr.update(choices=all_names, value=names)
                if len(names) < 2:
                    return [upd_names, upd_metric, "Choose at least two variants.", None, None, None, None]
                try:
                    frame = tables.comparison(d.results, names, ctx, items_for=d.items_for)
                except SsmboardError as exc:
                    return [upd_names, upd_metric, f"**{exc}**", None, None, None, None]
                m = upd_metric["value"]
                where = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in ctx.items() if v is not None)
                return [upd_names, upd_metric, f"{' vs '.join(names)} on {where}", frame,
                        plots.metric_vs(d.results, names, m, "chunk_size", ctx) if m else None,
                        plots.metric_vs(d.results, names, m, "prompt_len", ctx) if m else None,
                        plots.by_chunk_index(d.results, names, None, ctx)]

            cmp_in = [cmp_names, cmp_metric, device, prompt_len, batch]
            cmp_out = [cmp_names, cmp_metric, cmp_msg, cmp_table, cmp_chunk, cmp_len, cmp_kl]
            cmp_go.click(compare, cmp_in, cmp_out)
            cmp_metric.input(compare, cmp_in, cmp_out)

            # -- Speed vs fidelity ---------------------------------------------------------------
            with gr.Tab("Speed vs fidelity", id="pareto"):
                gr.Markdown("Every variant at the leaderboard's context: a speed metric against a fidelity or "
                            "task metric. The **Pareto front** joins the variants that nothing beats on both: "
                            "off the front, a variant gives up accuracy or speed for nothing.")
                with gr.Row():
                    px = gr.Dropdown(label="speed (x)", choices=[], elem_id="pareto-x")
                    py = gr.Dropdown(label="fidelity or task (y)", choices=[], elem_id="pareto-y")
                p_plot = gr.Plot(elem_id="pareto-plot")
                p_msg = gr.Markdown(elem_id="pareto-msg")

            def pareto(xk, yk, device_v, prompt_v, batch_v):
                d = snap.get()
                if d.empty:
                    return gr.update(), gr.update(), None, "No results in the store yet."
                r = tables.ranking(d.results, d.variants, tables.Selection(
                    device=device_v or None, prompt_len=_int(prompt_v), batch=_int(batch_v), groups=tables.GROUPS))
                speed = [c for c in r.columns if c.group in ("performance", "detail")]
                quality = [c for c in r.columns if c.group in ("fidelity", "tasks")] + \
                          [c for c in r.columns if c.group == "detail" and c.evaluator != "perf"]
                by = {c.key: c for c in r.columns}
                xk = xk if xk in by else next((c.key for c in speed if "tokens_per_s" in c.key),
                                              speed[0].key if speed else None)
                yk = yk if yk in by else (quality[0].key if quality else None)
                xs, ys = [(c.header, c.key) for c in speed], [(c.header, c.key) for c in quality]
                if xk is None or yk is None:
                    return (gr.update(choices=xs, value=xk), gr.update(choices=ys, value=yk), None,
                            "Needs a speed metric and a fidelity or task metric at this context.")
                cx, cy = by[xk], by[yk]
                fig = plots.speed_vs_quality(r.values, xk, yk, x_label=cx.header, y_label=cy.header,
                                             x_higher_is_better=cx.higher_is_better,
                                             y_higher_is_better=cy.higher_is_better, x_scale=cx.scale,
                                             y_scale=cy.scale)
                front = tables.pareto_front(r.values.set_index("variant"), xk, yk,
                                            x_higher_is_better=cx.higher_is_better,
                                            y_higher_is_better=cy.higher_is_better)
                return (gr.update(choices=xs, value=xk), gr.update(choices=ys, value=yk), fig,
                        f"On {r.context['device']}. Pareto front: " + (", ".join(front) or "none"))

            p_in, p_out = [px, py, device, prompt_len, batch], [px, py, p_plot, p_msg]
            px.input(pareto, p_in, p_out)
            py.input(pareto, p_in, p_out)

            # -- Variant page -------------------------------------------------------------------
            with gr.Tab("Variant", id="variant"):
                with gr.Row():
                    v_name = gr.Dropdown(label="variant", choices=[], elem_id="variant-name")
                    v_metric = gr.Dropdown(label="history of", choices=[], elem_id="variant-metric")
                v_spec = gr.Markdown(elem_id="variant-spec")
                v_hist = gr.Plot(label="history", elem_id="variant-history")
                v_results = gr.Dataframe(label="every result, with its environment", interactive=False, wrap=True,
                                         max_height=400, elem_id="variant-results")
                v_jobs = gr.Markdown(elem_id="variant-jobs")

            def variant_page(name, hist_metric):
                d = snap.get()
                names = list(d.variants["name"])
                name = name if name in names else (next(iter(d.results["variant"]), None) if not d.empty else
                                                   next(iter(names), None))
                if name is None:
                    return gr.update(choices=names), gr.update(), "No variants registered.", None, None, ""
                v = d.variants[d.variants["name"] == name].iloc[0].to_dict()
                spec = {k: v[k] for k in ("model", "scan", "chunk_size", "dtype", "compile", "compile_scope",
                                          "decoder", "n_layers", "use_cache", "description", "tags")}
                mine = d.results[d.results["variant"] == name]
                metrics = sorted(set(mine["metric"]) - {tables.OOM_METRIC})
                hist_metric = hist_metric if hist_metric in metrics else (
                    "ttft" if "ttft" in metrics else next(iter(metrics), None))
                regs = board_data.list_regressions()
                text = (f"### {name}\nfingerprint `{v['fingerprint']}` · registered {v['created_at']} · "
                        f"{'built-in' if v['builtin'] else 'user'} · {len(mine)} result(s)\n\n"
                        f"```json\n{json.dumps(spec, indent=1, default=str)}\n```")
                if regs is None:
                    text += "\n\nRegression detection is not available in this installation (ssmboard.jobs.regressions)."
                else:
                    own = [r for r in regs if r.get("variant") == name]
                    text += f"\n\n{len(own)} regression(s) flagged for this variant." if own else \
                        "\n\nNo regressions flagged for this variant."
                cols = ["created_at", "evaluator", "suite", "metric", "value", "unit", "stderr", "n", "ctx_prompt_len",
                        "ctx_batch", "x_chunk_size", "device_name", "torch_version", "cuda_version", "triton_version",
                        "transformers_version", "ssmboard_version", "git_sha", "hostname", "job_id"]
                res = mine.sort_values(["created_at", "id"], ascending=False)[cols].rename(
                    columns={"ctx_prompt_len": "prompt_len", "ctx_batch": "batch", "x_chunk_size": "chunk_size"})
                res = res.astype(object).where(res.notna(), "-")
                jobs = board_data.list_jobs()
                if jobs is None:
                    jobs_text = board_data.JOBS_MISSING
                else:
                    own = [j for j in jobs if j.get("variant") == name]
                    jobs_text = "#### Jobs\n" + ("\n".join(
                        f"- #{j.get('id')} {j.get('suite')} **{j.get('status')}** {j.get('created_at')}"
                        + (f" — {str(j.get('error')).splitlines()[-1][:200]}" if j.get("error") else "")
                        for j in own[:50]) or "No jobs for this variant.")
                fig = plots.history(d.results, name, hist_metric, regs or []) if hist_metric else None
                return (gr.update(choices=names, value=name), gr.update(choices=metrics, value=hist_metric), text,
                        fig, res, jobs_text)

            v_in, v_out = [v_name, v_metric], [v_name, v_metric, v_spec, v_hist, v_results, v_jobs]
            v_name.input(variant_page, v_in, v_out)
            v_metric.input(variant_page, v_in, v_out)

            # -- Jobs ---------------------------------------------------------------------------
            with gr.Tab("Jobs", id="jobs"):
                j_queue = gr.Markdown(elem_id="jobs-queue")
                j_table = gr.Dataframe(label="queue (newest first)", interactive=False, wrap=True, max_height=360,
                                       elem_id="jobs-table")
                j_fail = gr.Dataframe(label="recent failures", interactive=False, wrap=True, max_height=300,
                                      elem_id="jobs-failures")
                gr.Markdown("### Register a variant and submit it\nValidated by the registry; the error, if any, "
                            "is shown below the button.")
                from ssmboard.registry.spec import COMPILE_MODES, DECODERS, DEFAULT_MODEL, DEFAULT_SCAN, DTYPES

                with gr.Row():
                    r_name = gr.Textbox(label="name", placeholder="my-c128", elem_id="reg-name")
                    r_model = gr.Textbox(label="model", value=DEFAULT_MODEL, elem_id="reg-model")
                    r_scan = gr.Textbox(label="scan backend", value=DEFAULT_SCAN, elem_id="reg-scan")
                    r_chunk = gr.Textbox(label="chunk size", placeholder="empty: the model's own",
                                         elem_id="reg-chunk")
                with gr.Row():
                    r_dtype = gr.Dropdown(label="dtype", choices=list(DTYPES), value=DTYPES[0], elem_id="reg-dtype")
                    r_compile = gr.Dropdown(label="compile", choices=["none", *COMPILE_MODES], value="none",
                                            elem_id="reg-compile")
                    r_decoder = gr.Dropdown(label="decoder", choices=list(DECODERS), value=next(iter(DECODERS)),
                                            elem_id="reg-decoder")
                    r_suite = gr.Textbox(label="suite to submit (empty: register only)", value="quick",
                                         elem_id="reg-suite")
                r_go = gr.Button("Register and submit", variant="primary", elem_id="reg-go")
                r_msg = gr.Markdown(elem_id="reg-msg")

            def jobs_view():
                jobs = board_data.list_jobs(limit=200)
                hide = gr.update(value=None, visible=False)
                if jobs is None:
                    return board_data.JOBS_MISSING, hide, hide
                if not jobs:
                    return "The queue is empty. Submit a variant below, then run `ssmboard worker`.", hide, hide
                cols = ["id", "variant", "suite", "status", "attempts", "worker", "created_at", "started_at",
                        "finished_at"]
                frame = pd.DataFrame([{k: j.get(k) for k in cols} for j in jobs])
                failed = [j for j in jobs if str(j.get("status", "")).upper() == "FAILED"][:20]
                fail = pd.DataFrame([{"id": j.get("id"), "variant": j.get("variant"), "suite": j.get("suite"),
                                      "finished_at": j.get("finished_at"), "error": j.get("error")} for j in failed],
                                    columns=["id", "variant", "suite", "finished_at", "error"])
                counts = frame["status"].value_counts().to_dict()
                return ("Jobs: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
                        gr.update(value=frame, visible=True), gr.update(value=fail, visible=not fail.empty))

            def register(name, model, scan, chunk, dtype, compile_, decoder, suite):
                from ssmboard.registry.api import register_variant

                chunk = (chunk or "").strip()
                try:
                    chunk_value: Any = int(chunk) if chunk else None
                except ValueError:
                    chunk_value = chunk  # the registry says what is wrong with it
                try:
                    spec = register_variant((name or "").strip(), model=(model or "").strip(),
                                            scan=(scan or "").strip(), chunk_size=chunk_value, dtype=dtype,
                                            compile=None if compile_ in (None, "none") else compile_,
                                            decoder=decoder)
                except SsmboardError as exc:
                    return (f"**Not registered:** {exc}",) + jobs_view()
                msg = f"Registered **{spec.name}** (fingerprint `{spec.fingerprint}`)."
                suite = (suite or "").strip()
                if suite:
                    try:
                        from ssmboard.jobs import queue
                    except ImportError:
                        msg += f" {board_data.JOBS_MISSING.replace('VARIANT', spec.name)}"
                    else:
                        try:
                            job = queue.submit(spec.name, suite)
                            msg += (f" Job #{job['job_id']} queued for suite {suite!r}." if job.get("created") else
                                    f" Job #{job['job_id']} for suite {suite!r} was already queued.")
                        except SsmboardError as exc:
                            msg += f" **Not submitted:** {exc}"
                snap.get(fresh=True)
                return (msg,) + jobs_view()

            r_go.click(register, [r_name, r_model, r_scan, r_chunk, r_dtype, r_compile, r_decoder, r_suite],
                       [r_msg, j_queue, j_table, j_fail])
            # the ranked table first, then the other tabs one after another: run together they would
            # share the CPU and delay the table a user is waiting for
            (app.load(board, inputs, outputs).then(compare, cmp_in, cmp_out).then(pareto, p_in, p_out)
             .then(variant_page, v_in, v_out).then(jobs_view, None, [j_queue, j_table, j_fail]))
    return app


def serve(host: str = "127.0.0.1", port: int = 7860, share: bool = False, *, block: bool = True):
    """Start the app on ``host:port`` (loopback unless told otherwise; a public link only with ``share``)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    app = build_app()
    app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block, quiet=not block,
               show_error=True)
    return app
