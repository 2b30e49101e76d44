"""Report formats: one module per format, each exposing `render(report) -> str`.

Each reads the same Report object; none is derived from another format's text. Use
hardener.report.output.render_report / emit_report rather than these modules directly.
"""
