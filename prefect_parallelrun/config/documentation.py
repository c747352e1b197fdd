"""Where the blocks' "documentation" links in the Prefect UI point.

They go to the project's docs site, built with MkDocs from `docs/`: one page per file,
`docs/<page>.md` served at `<site>/<page>/`, headings as `#anchors`.

The blocks have no logo: the UI loads a logo from its URL in the user's browser, and where that
browser cannot reach the internet (a cluster's private network, an offline machine) every
remote logo shows as a broken image. Without one the UI draws its own placeholder.
"""

from __future__ import annotations

DOCS_SITE = "https://prefect-parallelrun.github.io/prefect-parallelrun/"


def docs_page(page: str, anchor: str = "") -> str:
    """The docs site's address of `docs/<page>.md`, at the heading `anchor` when given.

    Args:
        page: The page's path under `docs/`, without `.md`, such as `reference/config`.
        anchor: The heading's anchor on the page, if any.

    Returns:
        The page's URL, ending in `/` or in `#anchor`.
    """
    return f"{DOCS_SITE}{page}/" + (f"#{anchor}" if anchor else "")
