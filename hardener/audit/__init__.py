"""hardener.audit: the network vantage (`hardener audit`).

probe.py speaks SMTP to one server (typed errors, bounded reads, transcript); context.py holds a
target's options, sessions and result; checks/ holds one module per topic, each `run(ctx)`;
runner.py audits many targets concurrently; targets.py, mx.py and baseline.py read the inputs.
"""
