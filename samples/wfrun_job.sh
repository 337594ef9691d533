#!/bin/sh
# Run one wfrun command (from cron, CI or another script) and act on its exit code.
#   samples/wfrun_job.sh wfrun start app.py:NightlyReport --run-id "nightly-$(date +%F)"
#   samples/wfrun_job.sh wfrun resume --all
# Exits 0 when nothing needs a person (done, waiting, or another process has the run),
# else wfrun's own code, after one line on stderr saying what to do (cron mails it).
"$@"
code=$?
case $code in
    0)   exit 0 ;;   # completed: the result is on stdout
    75)  echo "wfrun-job: waiting (a timer or a signal): 'wfrun resume --all' carries it on" >&2
         exit 0 ;;
    5)   echo "wfrun-job: another process is running it: nothing to do" >&2
         exit 0 ;;
    1)   echo "wfrun-job: the workflow FAILED, was CANCELED or TIMED_OUT: see 'wfrun show RUN_ID'" >&2 ;;
    3)   echo "wfrun-job: BLOCKED: fix the workflow code, then 'wfrun resume RUN_ID'" >&2 ;;
    2|4) echo "wfrun-job: bad command, input or run id: nothing was run" >&2 ;;
    6)   echo "wfrun-job: a history file is damaged: nothing was run or changed" >&2 ;;
    74)  echo "wfrun-job: a history could not be read or written (disk, permissions): fix that, then resume" >&2 ;;
    130) echo "wfrun-job: interrupted: the next 'wfrun resume --all' continues it" >&2 ;;
    *)   echo "wfrun-job: unexpected exit code $code" >&2 ;;
esac
exit $code
