"""Which process owns a RUNNING MLflow run, and what to do when that process is gone.

A run killed with `kill -9` (or by a power cut, or an out-of-memory kill) has no chance to end
itself: MLflow shows it RUNNING forever. Every run the suite starts records its owner in the tag
`rnn_suite.owner` (HOST:PID:START, START being the process's start time, so that a later process
reusing the pid is not taken for it). Commands that write to a store (`train`, `tune`, `runs`)
then mark KILLED each RUNNING run whose owner ran on this host and is gone; `train --resume`
refuses a run whose owner is alive. Runs owned by another host are listed by `runs`, not judged.
"""

import os
import socket
import time

import mlflow

from apps.app import UserError

OWNER_TAG = "rnn_suite.owner"


def _start_time(pid):
    """The process's start time (clock ticks since boot, from /proc), or "" where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # Field 22, after the command name, which may itself hold spaces and parentheses.
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def this_process():
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_tags():
    """Tags recording that this process owns a run (set again when a run is resumed)."""
    return {OWNER_TAG: this_process()}


def parse_owner(tag):
    host, pid, start = tag.rsplit(":", 2)
    return host, int(pid), start


def owner_alive(tag):
    """True if the owner is alive, False if it is gone, None when it ran on another host."""
    host, pid, start = parse_owner(tag)
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    return not start or _start_time(pid) in ("", start)


def running_runs(client):
    return client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "attributes.status = 'RUNNING'", max_results=5000
    )


def mark_abandoned(client=None, echo=True):
    """Marks KILLED each RUNNING run whose owner ran on this host and is gone; returns their ids."""
    client = client or mlflow.MlflowClient()
    marked = []
    for run in running_runs(client):
        tag = run.data.tags.get(OWNER_TAG)
        if tag and owner_alive(tag) is False:
            client.set_tag(run.info.run_id, "rnn_suite.marked_killed", f"owner {tag} gone; seen by {this_process()}")
            client.set_terminated(run.info.run_id, status="KILLED", end_time=int(time.time() * 1000))
            marked.append(run.info.run_id)
            if echo:
                name = run.data.tags.get("mlflow.runName", "")
                print(f"run {run.info.run_id} ({name}) was RUNNING but its process {tag} is gone: marked KILLED")
    return marked


def refuse_if_owned(run):
    """For --resume: a UserError-worthy message when `run`'s owner may still be training it, else None."""
    tag = run.data.tags.get(OWNER_TAG)
    if run.info.status != "RUNNING" or not tag:
        return None
    host, pid, _ = parse_owner(tag)
    alive = owner_alive(tag)
    if alive:
        return (
            f"run {run.info.run_id} is still being trained by process {pid} on this host: wait for it, "
            f"or stop it (Ctrl-C in its terminal, or kill {pid}) and resume then"
        )
    if alive is None:
        return (
            f"run {run.info.run_id} is RUNNING on host {host} (process {pid}), which this machine cannot "
            f"check: resume it there, or, if that process is gone, mark it with "
            f"`runs --mark-killed {run.info.run_id}` first"
        )
    return None


def list_runs(app, args):
    """The `runs` command: the experiment's latest runs, each with its status and owner; first marks
    KILLED the RUNNING runs whose process on this host is gone, and those named by --mark-killed."""
    from apps import tracking

    tracking.configure(args.tracking_uri, args.experiment)
    client = mlflow.MlflowClient()
    for run_id in args.mark_killed or ():
        try:
            run = client.get_run(run_id)
        except mlflow.exceptions.MlflowException:
            raise UserError(f"--mark-killed {run_id}: no such run in {mlflow.get_tracking_uri()}") from None
        if run.info.status != "RUNNING":
            raise UserError(f"--mark-killed {run_id}: the run is {run.info.status}, not RUNNING")
        client.set_tag(run_id, "rnn_suite.marked_killed", f"by hand, from {this_process()}")
        client.set_terminated(run_id, status="KILLED", end_time=int(time.time() * 1000))
        print(f"run {run_id}: marked KILLED")
    experiment = client.get_experiment_by_name(args.experiment)
    runs = client.search_runs(
        [experiment.experiment_id], max_results=args.limit, order_by=["attributes.start_time DESC"]
    )
    print(f"{'run id':32}  {'status':8}  {'started':16}  {'name':28}  process")
    for run in runs:
        tag = run.data.tags.get(OWNER_TAG, "")
        state = ""
        if tag and run.info.status == "RUNNING":
            state = {True: " (alive)", False: " (gone)", None: " (another host)"}[owner_alive(tag)]
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.info.start_time / 1000))
        name = run.data.tags.get("mlflow.runName", "")[:28]
        print(f"{run.info.run_id:32}  {run.info.status:8}  {started:16}  {name:28}  {tag}{state}")
    return runs
