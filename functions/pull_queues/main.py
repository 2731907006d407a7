"""Scheduled: pulls the providers' receipt queues (Chat App's SMQ) into Pub/Sub.

Cloud Scheduler calls it every minute; each run polls until just before the next one is
due (shared.core.polling), so the queues are watched by one run at a time.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import functions_framework
from flask import Request, Response, jsonify

from shared import providers
from shared.adapters import logs
from shared.adapters.publisher import PubSubSettings
from shared.core.config import Env
from shared.core.polling import SCHEDULE_TIME_HEADER, PullReport, Schedule

logs.setup()
log = logging.getLogger("pull_queues")
env = Env()
schedule = Schedule.from_env(env)
publisher = PubSubSettings.from_env(env, default_timeout=10.0).publisher()  # no caller waits
pullers = providers.queue_pullers(env, publisher.publish)
env.check("pull-queues")


@functions_framework.http
def pull_queues(request: Request) -> Response:
    if request.method != "POST":  # a probe of the server, not Cloud Scheduler: no run
        return Response("runs on POST, as Cloud Scheduler calls it\n", 405, {"Allow": "POST"})
    stop_at = schedule.stop_polling_at(request.headers.get(SCHEDULE_TIME_HEADER), time.time())
    with ThreadPoolExecutor(max_workers=len(pullers)) as pool:  # every provider at once
        report = PullReport.combined(pool.map(lambda puller: puller.run(stop_at), pullers))
    summary = {**report.counts, "problems": list(report.problems)}
    log.log(logging.WARNING if report.problems else logging.INFO, "queues pulled", extra=summary)
    response = jsonify(summary)
    response.status_code = 503 if report.problems else 200  # the scheduler records a failed run
    return response
