"""`make bench`: the pipeline measured against its ceiling and naive baselines, in one run.

Every speed is a ratio to a baseline measured in the same run on the same machine; counts
(writes, commits, publishes, invocations) are counted from the servers' own logs.
"""
