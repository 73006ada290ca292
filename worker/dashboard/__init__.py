"""`grants dashboard`: the operator's web page (Starlette, Jinja2, htmx; charts as SVG)."""
