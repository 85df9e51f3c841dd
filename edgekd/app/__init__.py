"""The phone app: a static web app (PWA) on LiteRT.js that runs a bundle in the browser (``writer``), its server
for trying it from a phone (``serve``) and the ``edgekd app`` commands (``cli``).

The names below load on first use, so that ``edgekd`` (which imports ``edgekd.app.cli``) starts without numpy or
the runtime."""
__all__ = ["AppResult", "browser_artifact", "check_app_formats", "write_app"]


def __getattr__(name):
    if name in __all__:
        from . import writer

        return getattr(writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
