"""Network checks of `hardener audit`, one module per topic, each `async def run(ctx)`.

hardener.audit.runner.CHECKS registers them, in the order they run, with the slugs each records;
every module names the same slugs in SLUGS (tests/audit/test_runner.py checks the two agree).
"""
