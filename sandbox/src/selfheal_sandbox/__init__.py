"""selfheal-sandbox: a local, behavioural stand-in for the AWS services selfheal.aws uses.

moto provides the API and stores the resources; this package adds what AWS
does on its own (instance roots from AMIs, and later health checks, healing,
scaling, alarms, notifications), next to moto rather than in a fork.
"""

__version__ = "0.1.0"
