"""RQ jobs: plain functions taking ids, run inside an app context by `jobs.worker`."""
