'use strict';
// Scenario 7: the receiving side's cost per message, from the runs of oneway-c2s (no runs of its
// own). Over the receiver's window (first to last message):
//   main-thread ns/msg  event-loop active time (perf_hooks.eventLoopUtilization) / messages:
//                       what receiving costs the JavaScript thread, i.e. what the application
//                       cannot use for its own work.
//   process CPU ns/msg  process.cpuUsage() user + system / messages, for reference: it counts
//                       every thread (the native core's tokio threads, libzmq's I/O thread).

module.exports = {
  name: 'loop-cost',
  title: 'receiver cost per message (oneway-c2s runs)',
  source: 'oneway-c2s',
  metrics: [
    { key: 'loopNsPerMsg', label: 'main-thread ns/msg', better: 'lower', digits: 0 },
    { key: 'cpuNsPerMsg', label: 'process CPU ns/msg', better: 'lower', digits: 0 },
  ],
};
