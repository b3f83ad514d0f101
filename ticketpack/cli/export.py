"""`ticketpack export`: flags and --config → ExportConfig → ticketpack.export.exporter.export_model → summary table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ticketpack.cli.common import JsonOpt, err, out, pct, print_json
from ticketpack.cli.flags import ConfigFlags, Flag, to_flags

if TYPE_CHECKING:
    from ticketpack.export.exporter import ExportConfig

FLAGS = ConfigFlags(
    "ticketpack.export.exporter:ExportConfig",
    Flag("--level", "level"),
    Flag("--init", "init"),
    Flag("--seed-index", "seed", int),
    Flag("--format", "format"),
    Flag("--quantize", "quantize"),
    Flag("--calibration-samples", "calibration_samples", int),
    Flag("--calibration-method", "calibration_method"),
    Flag("--calibration-seed", "calibration_seed", int),
    Flag("--max-static-int8-drop", "max_static_int8_drop", float),
    Flag("--opset", "opset", int),
    Flag("--max-accuracy-drop", "max_accuracy_drop", float),
    Flag("--atol", "atol", float),
    Flag("--threads", "threads", int),
    Flag("--route", "route"),
    Flag("--allow-changed-model", "allow_changed_model", bool),
    Flag("--self-contained/--no-self-contained", "self_contained", bool),
    Flag("--speed-check/--no-speed-check", "speed_check", bool),
)


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


@FLAGS.command
def export_cmd(
    cfg: ExportConfig,
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="A ticket directory (ticketpack search) or a transfer run (ticketpack transfer).")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write.")],
    force: Annotated[bool, typer.Option(help="Replace --out if it already exists.")] = False,
    sign: Annotated[Path | None, typer.Option(
        "--sign", metavar="PRIVATE_KEY.pem", help="Sign the file with this elliptic-curve private key (PEM) and write "
        "the signature beside it, <out>.sig (OpenSSF model-signing; needs the sign extra). `validate --verify` and "
        "`serve --verify` then refuse the file if a byte of it changes.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Export a ticket or a transferred model to one ONNX file with an embedded model card, checked before writing."""
    from ticketpack.core.errors import TicketpackError
    from ticketpack.core.fileio import check_writable_file
    from ticketpack.export.exporter import export_model
    from ticketpack.transfer.config import level_error

    if cfg.level is not None and (why := level_error(cfg.level)):
        raise TicketpackError(f"--level: {why}")
    check_writable_file(out_path, "out", force=force)
    signing = None
    if sign is not None:  # the key and the signature's place are checked before any work
        from ticketpack.runtime.signing import signature_path, signer

        signing = signer(sign)
        check_writable_file(signature_path(out_path), "sign", force=force, what="the signature")

    with err.status("exporting", spinner="dots") as status:
        result = export_model(source, out_path, cfg, on_event=lambda e: status.update(e.message))
        if signing is not None:
            from ticketpack.runtime.signing import sign_file

            status.update("signing")
            try:
                signature = sign_file(result.path, signing)
            except TicketpackError:
                Path(result.path).unlink(missing_ok=True)  # an unsigned file where a signed one was asked for
                raise
    if result.route_note:
        err.print(f"[yellow]note:[/] {escape(result.route_note)}", highlight=False, soft_wrap=True)
    if result.format_note:
        err.print(f"[yellow]warning:[/] {escape(result.format_note)}", highlight=False, soft_wrap=True)
    if result.speed_note:
        err.print(f"[yellow]warning:[/] {escape(result.speed_note)}", highlight=False, soft_wrap=True)
    if json_out:
        print_json(result)
        return
    card = result.card
    err.print(f"level: {escape(to_flags(result.level_reason, ['level'], ctx.command))}")
    table = Table(title=f"{result.path} ({card.model.name}, {card.export.format}"
                        f"{'' if card.export.quantize == 'none' else ', ' + card.export.quantize})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("file size", f"{_size(result.file_bytes)} = {result.size_ratio:.3f} × the unpruned dense export ({_size(result.dense_bytes)})")
    table.add_row("weights remaining", f"{pct(card.sparsity.weights_remaining)} as exported ({pct(result.weights_remaining)} in the mask); "
                  f"MACs of nonzero weights: {pct(result.mac_fraction)} of dense")
    if card.export.compacted:
        table.add_row("compacted", ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in card.export.compacted.items()))
    if card.export.bitmask_encoded is not None:
        table.add_row("values + bit mask", ", ".join(card.export.bitmask_encoded) or "none (every weight stored dense)")
    m, p = card.metrics, card.parity
    table.add_row("test accuracy", f"{m.test_accuracy:.4f} ONNX, {m.reference_test_accuracy:.4f} PyTorch"
                  + (f", dense {m.dense_test_accuracy:.4f}" if m.dense_test_accuracy is not None else "")
                  + f" ({m.evaluated_on}, {m.test_examples} examples)")
    table.add_row("parity", f"max |ORT - PyTorch| {p.max_abs_diff:.2e}, argmax agreement {p.argmax_agreement:.1%}"
                  + (f" (float graph {p.float_max_abs_diff:.2e}, atol {p.atol:g})" if p.float_max_abs_diff is not None else f" (atol {p.atol:g})"))
    if (raw := card.export.raw_input) is not None:
        table.add_row("self-contained", f"takes {raw.name} ({raw.dtype} {raw.shape}), answers logits, probabilities "
                      "and label; same model input and logits as the Python featurizer on the test split")
    table.add_row("checks", "onnx.checker full check, ONNX Runtime load, parity: passed")
    table.add_row("weights digest", card.weights_digest)
    if signing is not None:
        table.add_row("signature", f"{signature} (verify: ticketpack validate {result.path} --verify PUBLIC_KEY.pem)")
    out.print(table)
