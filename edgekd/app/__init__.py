"""The phone app: a static web app (PWA) on LiteRT.js that runs a bundle in the browser (``writer``), its server
for trying it from a phone (``serve``) and the ``edgekd app`` commands (``cli``)."""
from .writer import AppResult, browser_artifact, check_app_formats, write_app

__all__ = ["AppResult", "browser_artifact", "check_app_formats", "write_app"]
