"""A durable job topic and the worker that serves it, for the crash tests:

hivebus worker --transport URL tests.e2e.durable_jobs:jobs
"""

from __future__ import annotations

import os

import anyio

from bus import Actor, Bus, Durability, Message, Topic, handler


class Job(Message, frozen=True, kw_only=True):
    n: int


class Done(Message, frozen=True, kw_only=True):
    n: int
    by: int  # the pid of the worker that did it


JOBS = Topic("crash.jobs", Job, reply=Done, durable=Durability(ack_wait=1.0, max_age=300))
SECONDS_PER_JOB = 0.8


class Jobs(Actor):
    concurrency = 4
    seconds = SECONDS_PER_JOB

    @handler(JOBS, queue="jobs")
    async def work(self, job: Job) -> Done:
        await anyio.sleep(self.seconds)
        return Done(n=job.n, by=os.getpid())


def jobs(bus: Bus) -> Jobs:
    return Jobs("jobs")


def held_jobs(bus: Bus) -> Jobs:
    """Jobs that take a minute: a worker doing them holds its messages until it is killed."""
    held = Jobs("jobs")
    held.seconds = 60.0
    return held


def nothing(bus: Bus) -> Actor:
    """A worker factory gone wrong: an actor with no handlers."""
    return Actor("idle")
