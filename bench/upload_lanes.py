"""How gallery uploads share 2 cores: the upload handler's work (``load_gallery`` and the
pre-filter's features, ``Conversation.prepare``) for N gallery zips, one at a time, two and four
at once (threads, as Gradio runs events). Why the app runs uploads in one lane (docs/app.md).

    python bench/upload_lanes.py [--clients 8] [--gallery 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--gallery", type=int, default=50)
    args = ap.parse_args(argv)

    import app
    from app_load import make_gallery_zips  # bench/ is on the path when run as a script
    from chatreid.chat.conversation import Conversation
    from chatreid.chat.settings import Limits, app_default_model
    from chatreid.chat.uploads import load_gallery

    zips, _ = make_gallery_zips(args.clients, args.gallery, Path(tempfile.mkdtemp(prefix="lanes-")))
    engine = app.load_engine(app_default_model(None))
    limits = app.fit_limits(engine, Limits(max_gallery=max(200, args.gallery)))

    def one(z):
        t = time.perf_counter()
        items, _ = load_gallery([str(z)], limits)
        conv = Conversation()
        conv.set_gallery(items)
        conv.prepare(engine)
        return time.perf_counter() - t

    one(zips[0])  # warm-up
    print(f"{args.clients} uploads of {args.gallery} images; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for workers in (1, 2, 4):
        t = time.perf_counter()
        with ThreadPoolExecutor(workers) as ex:
            each = list(ex.map(one, zips))
        print(f"{workers} at a time: {time.perf_counter() - t:6.2f} s in all, "
              f"{sum(each) / len(each):5.2f} s each (mean)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
