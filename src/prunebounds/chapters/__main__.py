"""``python -m prunebounds.chapters full-results``: see :mod:`prunebounds.chapters.paper_scale`."""

from .paper_scale import main

if __name__ == "__main__":
    raise SystemExit(main())
