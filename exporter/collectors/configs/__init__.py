"""Each probe's config section, one module per probe, apart from the probe's code.

The config model needs every probe's section (to validate, refuse and document a
target), but the daemon needs a probe's code only for the targets it is given:
these modules import pydantic and the schema's types, never a probe's wire code or
what it alone needs (ssl, h11, json...). The registry (collectors/__init__.py)
names each probe's implementation by module and imports it when a collector of it
is built. Each probe module imports its Config back, so `probe_module.Config` stays
where it was.
"""
