'use strict';
// Scenario 7: the receiving side's cost per message, from the runs of oneway-c2s (no runs of its
// own). Over the receiver's window (first to last message):
//   main-thread CPU     CPU time of the JavaScript thread alone (/proc/thread-self/schedstat) /
//                       messages: what receiving costs the thread the application runs on.
//   loop active         event-loop active time (perf_hooks.eventLoopUtilization) / messages. It
//                       is wall time: when the process is pinned to one CPU it also counts the
//                       time the JS thread waited for that CPU while another thread of the
//                       process (the native core's, libzmq's) ran.
//   process CPU ns/msg  process.cpuUsage() user + system / messages, for reference: it counts
//                       every thread (the native core's tokio threads, libzmq's I/O thread).

module.exports = {
  name: 'loop-cost',
  title: 'receiver cost per message (oneway-c2s runs)',
  source: 'oneway-c2s',
  metrics: [
    { key: 'mainNsPerMsg', label: 'main-thread CPU ns/msg', better: 'lower', digits: 0 },
    { key: 'loopNsPerMsg', label: 'loop active ns/msg', better: 'lower', digits: 0 },
    { key: 'cpuNsPerMsg', label: 'process CPU ns/msg', better: 'lower', digits: 0 },
  ],
};
