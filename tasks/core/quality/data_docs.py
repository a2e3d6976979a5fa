"""Data Docs that keep every validation, and read offline.

Great Expectations builds one site per context, and its index lists only that context's
validations; its pages load Bootstrap, Font Awesome, jQuery and Vega from public CDNs, so
with no internet they render unstyled. Here:

- each validating stage has its own GX site under ``reports/data_docs/<site>/`` (``raw``:
  the raw suite per snapshot, ``leakage``: the leakage audit per split); every validation
  is a page named by the snapshot it checked, recorded in ``<site>/runs.json``;
- ``reports/data_docs/index.html`` lists the validations of every site, newest first, keeping
  the last ``keep`` runs per site (older pages are deleted);
- the CDN assets come from the npm packages GX names, fetched once by ``make install``
  (``python -m tasks.core.quality.data_docs install``) with their SHA-256 checked, copied to
  ``reports/data_docs/vendor/``, and every page's links rewritten to them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tasks.core.io import read_json, write_json, write_text
from tasks.core.quality.pages import escape_strings

log = logging.getLogger("churn.data_docs")

FILTER = "package/dist/extensions/filter-control/bootstrap-table-filter-control"
# npm package -> (sha256 of its tarball, {file in the tarball: path under vendor/})
PACKAGES: dict[str, tuple[str, dict[str, str]]] = {
    "bootstrap@4.3.1": (
        "b109c069bbb7cee57c3ddffb65d8481db5fe7e428b6d9b1ca502119a0429bd16",
        {
            "package/dist/css/bootstrap.min.css": "bootstrap.min.css",
            "package/dist/js/bootstrap.min.js": "bootstrap.min.js",
        },
    ),
    "jquery@3.7.1": (
        "68a9f787516da47c680e09c187bcbac4536b6f85d90eb882844e12919e583f53",
        {"package/dist/jquery.min.js": "jquery.min.js"},
    ),
    "popper.js@1.12.9": (
        "4233fad2da34a2a6bc982e7e02c85c14180af075853d97d7e3bfa7124c853cbf",
        {"package/dist/umd/popper.min.js": "popper.min.js"},
    ),
    "bootstrap-table@1.19.1": (
        "80f84cbf2f8f92e0d5444a82fb99495ab8a286b5cdb0594102e568eb9d9fa69a",
        {
            "package/dist/bootstrap-table.min.css": "bootstrap-table.min.css",
            "package/dist/bootstrap-table.min.js": "bootstrap-table.min.js",
            f"{FILTER}.min.css": "bootstrap-table-filter-control.min.css",
            f"{FILTER}.min.js": "bootstrap-table-filter-control.min.js",
        },
    ),
    "bootstrap-datepicker@1.9.0": (
        "342bd95b65db796e0ac35ad9296edbe6733daefc9869b2e5b27286d423e38146",
        {
            "package/dist/css/bootstrap-datepicker.min.css": "bootstrap-datepicker.min.css",
            "package/dist/js/bootstrap-datepicker.min.js": "bootstrap-datepicker.min.js",
        },
    ),
    "@fortawesome/fontawesome-free@6.6.0": (
        "cf0b890ab2b68d3c4ea0f93ceb81cc24b956cccf9db36c63be044a672bd3b4dd",
        {
            "package/css/all.min.css": "fontawesome/css/all.min.css",
            "package/webfonts/": "fontawesome/webfonts/",
        },
    ),
    "@forevolve/bootstrap-dark@1.1.0": (
        "20b089d52bc2ae80424fc43e5263023e96bd8479e7c5d346b8766c1b792a1cfd",
        {"package/dist/css/bootstrap-prefers-dark.css": "bootstrap-prefers-dark.css"},
    ),
    "vega@5.33.1": (
        "1b8504b6731c5311be3269c4d84ca996a5cc293bc772283293ede20c490e16c3",
        {"package/build/vega.min.js": "vega.min.js"},
    ),
    "vega-lite@5.23.0": (
        "e4cbfdd8f6f1abe381c59cd558fd6a559c12b1496bfdf2e0c3295263a40fe4da",
        {"package/build/vega-lite.min.js": "vega-lite.min.js"},
    ),
    "vega-embed@6.29.0": (
        "ecf1ee709c2bac9e0a4ead6908114b05b62c71493e10a8a4308109bb070f8eb1",
        {"package/build/vega-embed.min.js": "vega-embed.min.js"},
    ),
}

# the CDN addresses GX 1.24 writes (matched by file name and version), and their local copy
LOCAL = [
    (r"bootstrap/4\.3\.1/css/bootstrap\.min\.css", "bootstrap.min.css"),
    (r"bootstrap/4\.3\.1/js/bootstrap\.min\.js", "bootstrap.min.js"),
    (r"jquery-3\.7\.1\.min\.js", "jquery.min.js"),
    (r"popper\.js/1\.12\.9/umd/popper\.min\.js", "popper.min.js"),
    (r"bootstrap-table@1\.19\.\d/dist/bootstrap-table\.min\.css", "bootstrap-table.min.css"),
    (r"bootstrap-table@1\.19\.\d/dist/bootstrap-table\.min\.js", "bootstrap-table.min.js"),
    (
        r"bootstrap-table@1\.19\.\d/dist/extensions/filter-control/"
        r"bootstrap-table-filter-control(\.min)?\.css",
        "bootstrap-table-filter-control.min.css",
    ),
    (
        r"bootstrap-table@1\.19\.\d/dist/extensions/filter-control/"
        r"bootstrap-table-filter-control\.min\.js",
        "bootstrap-table-filter-control.min.js",
    ),
    (
        r"bootstrap-datepicker/1\.9\.0/css/bootstrap-datepicker\.min\.css",
        "bootstrap-datepicker.min.css",
    ),
    (
        r"bootstrap-datepicker/1\.9\.0/js/bootstrap-datepicker\.min\.js",
        "bootstrap-datepicker.min.js",
    ),
    (r"font-awesome/6\.6\.0/css/all\.min\.css", "fontawesome/css/all.min.css"),
    (r"bootstrap-dark@1\.1\.0/dist/css/bootstrap-prefers-dark\.css", "bootstrap-prefers-dark.css"),
    (r"npm/vega@5", "vega.min.js"),
    (r"npm/vega-lite@5", "vega-lite.min.js"),
    (r"npm/vega-embed@6", "vega-embed.min.js"),
]
# GX's logo, from its web-assets bucket: the copy in the site's static folder
_FAVICON = re.compile(r'href="(\.\./)*static/images/favicon\.ico"')
_LOGO = re.compile(r"https?://great-expectations-web-assets[^\"']*/logo-long\.png[^\"']*")
_URL = re.compile(r"""(?P<q>["'])https?://[^"']+(?P=q)""")
_LOADED = re.compile(r"""<(?:script|link)\b[^>]*?(?:src|href)=["'](https?://[^"']+)""")
SITES = {"raw": "Raw data suite", "leakage": "Leakage audit"}
VENDOR = "vendor"
KEPT = "kept"


@dataclass(frozen=True)
class DocsTarget:
    """Where a validation's Data Docs page goes, and under what name."""

    root: Path
    site: str
    run_name: str
    keep: int = 20

    @property
    def site_dir(self) -> Path:
        """The GX site of this kind of validation."""
        return self.root / self.site


def publish(
    target: DocsTarget,
    since: float,
    success: bool,
    checks: int,
    failed: int,
    unsafe: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Record the page GX just wrote for a validation, then rebuild the index.

    ``unsafe``: texts of the data (column names, reported values) with a character that
    means something in HTML; GX writes them into its pages raw, so every page it wrote
    now is rewritten with them escaped (:func:`tasks.core.quality.pages.escape_strings`).
    """
    if unsafe:
        for written in target.site_dir.rglob("*.html"):
            if written.stat().st_mtime >= since:
                text = written.read_text(encoding="utf-8")
                safe = escape_strings(text, unsafe)
                if safe != text:
                    write_text(written, safe)
    pages = [
        p for p in (target.site_dir / "validations").rglob("*.html") if p.stat().st_mtime >= since
    ]
    if pages:
        page = max(pages, key=lambda p: p.stat().st_mtime)
        # GX deletes the pages of earlier validations from its folder: keep a copy at the
        # same depth (so the page's relative links still resolve)
        rel = page.relative_to(target.site_dir / "validations")
        kept = target.site_dir / KEPT / rel
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(page, kept)
        record_run(
            target.root,
            target.site,
            {
                "run_name": target.run_name,
                "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "page": kept.relative_to(target.site_dir).as_posix(),
                "success": success,
                "checks": checks,
                "failed": failed,
            },
        )
    finish(target.root, target.keep)


def assets_dir() -> Path:
    """Where ``make install`` keeps the vendored assets (inside the virtual environment)."""
    return Path(os.environ.get("CHURN_DOCS_ASSETS") or Path(sys.prefix) / "share" / "data-docs")


def install(dest: Path, packages: dict[str, tuple[str, dict[str, str]]] = PACKAGES) -> Path:
    """Fetch the packages with ``npm pack``, check their hashes, extract the files we use.

    Raises
    ------
    RuntimeError
        If npm is missing or fails, or a tarball's SHA-256 is not the pinned one.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found: Data Docs will load their styles from public CDNs")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [npm, "pack", "--silent", *packages], cwd=tmp, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(f"npm pack failed: {proc.stderr.strip()[-500:]}")
        tarballs = proc.stdout.split()
        staging = Path(tmp) / VENDOR
        for (spec, (pinned, files)), tarball in zip(packages.items(), tarballs, strict=True):
            data = (Path(tmp) / tarball).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if pinned and digest != pinned:
                raise RuntimeError(f"{spec}: sha256 {digest} is not the pinned {pinned}")
            with tarfile.open(Path(tmp) / tarball) as archive:
                for member in archive.getmembers():
                    for source, target in files.items():
                        if member.isfile() and (
                            member.name == source
                            or (source.endswith("/") and member.name.startswith(source))
                        ):
                            out = (
                                staging / target / member.name[len(source) :]
                                if source.endswith("/")
                                else staging / target
                            )
                            out.parent.mkdir(parents=True, exist_ok=True)
                            out.write_bytes(archive.extractfile(member).read())
        dest.mkdir(parents=True, exist_ok=True)
        final = dest / VENDOR
        if final.exists():
            shutil.rmtree(final)
        shutil.copytree(staging, final)
    return final


def localise(page: str, depth: int) -> tuple[str, list[str]]:
    """``page`` with every known CDN link pointing at ``vendor/``; the links left remote."""
    prefix = "../" * depth + VENDOR + "/"

    def swap(match: re.Match[str]) -> str:
        url = match.group(0)[1:-1]
        for pattern, local in LOCAL:
            if re.search(pattern, url):
                return f"{match.group('q')}{prefix}{local}{match.group('q')}"
        return match.group(0)

    out = re.sub(r'\s(integrity|crossorigin)="[^"]*"', "", _URL.sub(swap, page))
    if depth:  # a page of a site: GX's own images, at the site's depth
        up = "../" * (depth - 1)
        out = _LOGO.sub(f"{up}static/images/logo-long.png", out)
        out = _FAVICON.sub(f'href="{up}static/images/favicon.ico"', out)
    return out, _LOADED.findall(out)


def record_run(docs_root: Path, site: str, run: dict[str, Any]) -> None:
    """Add one validation to ``<site>/runs.json``."""
    path = docs_root / site / "runs.json"
    runs = read_json(path) if path.exists() else []
    write_json(path, [*runs, run])


def prune(docs_root: Path, site: str, keep: int | None) -> list[dict[str, Any]]:
    """Keep the last ``keep`` runs of a site (all: None); delete older pages. Returns the kept."""
    path = docs_root / site / "runs.json"
    runs = read_json(path) if path.exists() else []
    runs = [r for r in runs if (docs_root / site / r["page"]).exists()]
    if keep is None:
        return runs
    old, kept = runs[:-keep], runs[-keep:]
    for run in old:
        folder = (docs_root / site / run["page"]).parent
        shutil.rmtree(folder, ignore_errors=True)
        for parent in folder.parents:  # and the folders it leaves empty
            if parent == docs_root / site or any(parent.iterdir()):
                break
            parent.rmdir()
    write_json(path, kept)
    return kept


def finish(docs_root: Path, keep: int | None = None) -> Path:
    """Prune each site (when ``keep`` is given), write the combined index, make pages offline.

    Only pages whose links change are rewritten, so a stage never alters another stage's
    (DVC-tracked) pages once they are offline.
    """
    rows = []
    for site, title in SITES.items():
        if not (docs_root / site).is_dir():
            continue
        for run in prune(docs_root, site, keep):
            rows.append((run["time"], site, title, run))
    rows.sort(key=lambda r: r[0], reverse=True)
    vendor = assets_dir() / VENDOR
    if vendor.is_dir():
        target = docs_root / VENDOR
        if not target.exists():
            shutil.copytree(vendor, target)
    remote: set[str] = set()
    for page in docs_root.rglob("*.html"):
        if VENDOR in page.relative_to(docs_root).parts:
            continue
        depth = len(page.relative_to(docs_root).parts) - 1
        text, left = (
            localise(page.read_text(encoding="utf-8"), depth)
            if vendor.is_dir()
            else (page.read_text(encoding="utf-8"), [])
        )
        remote.update(left)
        write_text(page, text)
    if remote:
        log.warning(
            "Data Docs still load %d asset(s) from the internet: %s",
            len(remote),
            ", ".join(sorted(remote)[:3]),
        )
    elif not vendor.is_dir():
        log.warning(
            "Data Docs assets are not installed (make install fetches them with npm); "
            "the pages need internet to be styled"
        )
    write_text(docs_root / "index.html", index_page(rows, vendor.is_dir()))
    return docs_root / "index.html"


def index_page(rows: list[tuple[str, str, str, dict[str, Any]]], offline: bool) -> str:
    """The combined index: every kept validation, newest first."""
    css = (
        f'<link rel="stylesheet" href="{VENDOR}/bootstrap.min.css"/>'
        if offline
        else "<style>body{font-family:sans-serif}</style>"
    )
    body = "\n".join(
        f'<tr class="{"table-success" if r["success"] else "table-danger"}">'
        f"<td>{html.escape(title)}</td>"
        f'<td><a href="{html.escape(quote(site + "/" + r["page"]))}">'
        f"{html.escape(r['run_name'])}</a></td>"
        f"<td>{html.escape(time)}</td>"
        f"<td>{'passed' if r['success'] else 'FAILED'} ({r['checks'] - r['failed']}/{r['checks']})"
        "</td></tr>"
        for time, site, title, r in rows
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Data Docs</title>{css}</head>
<body><div class="container py-4">
<h1 class="h3">Data Docs</h1>
<p class="text-muted">Every validation of the raw-data suite and the leakage audit kept for the
last runs (<code>clean.data_docs_runs</code>), newest first. Generated
{dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}.</p>
<table class="table table-sm" id="validations">
<thead><tr><th>check</th><th>run</th><th>time (UTC)</th><th>result</th></tr></thead>
<tbody>
{body}
</tbody></table></div></body></html>
"""


def main(argv: list[str]) -> int:
    """``install [DEST]``: fetch the assets (``make install`` runs it)."""
    if not argv or argv[0] != "install":
        print("usage: python -m tasks.core.quality.data_docs install [DEST]", file=sys.stderr)
        return 2
    dest = Path(argv[1]) if len(argv) > 1 else assets_dir()
    try:
        where = install(dest)
    except (RuntimeError, OSError) as exc:
        print(f"Data Docs assets not installed ({exc}); the pages need internet to be styled")
        return 0
    print(f"Data Docs assets in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
