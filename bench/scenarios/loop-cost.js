'use strict';
// Scenario 7: the cost per message on each side, from the runs of oneway-c2s (no runs of its
// own). The receiver, over its window (first to last message):
//   main-thread CPU     CPU time of the JavaScript thread alone (/proc/thread-self/schedstat) /
//                       messages: what receiving costs the thread the application runs on.
//   loop active         event-loop active time (perf_hooks.eventLoopUtilization) / messages. It
//                       is wall time: when the process is pinned to one CPU it also counts the
//                       time the JS thread waited for that CPU while another thread of the
//                       process (the native core's, libzmq's) ran.
//   process CPU ns/msg  process.cpuUsage() user + system / messages, for reference: it counts
//                       every thread (the native core's tokio threads, libzmq's I/O thread).
// The sender (the target: its own cost ≤ JSON.stringify + 100 ns):
//   sender main-thread CPU   the JS thread's CPU time (schedstat, read after a 0.1 ms sleep so
//                            it is current) from just before the first send() until the
//                            receiver has every message / messages sent.
//   JSON.stringify           the same clock over the same loop and messages with
//                            JSON.stringify(message) in place of send(), in the same process
//                            just before (after an untimed warm-up pass) / messages.
//   sender minus stringify   the difference: what send() adds to serializing the message.

module.exports = {
  name: 'loop-cost',
  title: 'receiver and sender cost per message (oneway-c2s runs)',
  source: 'oneway-c2s',
  metrics: [
    { key: 'mainNsPerMsg', label: 'receiver main-thread CPU ns/msg', better: 'lower', digits: 0 },
    { key: 'loopNsPerMsg', label: 'receiver loop active ns/msg', better: 'lower', digits: 0 },
    { key: 'cpuNsPerMsg', label: 'receiver process CPU ns/msg', better: 'lower', digits: 0 },
    { key: 'senderMainNsPerMsg', label: 'sender main-thread CPU ns/msg', better: 'lower', digits: 0 },
    { key: 'stringifyNsPerMsg', label: 'JSON.stringify ns/msg', better: 'lower', digits: 0 },
    { key: 'sendOverheadNsPerMsg', label: 'sender minus stringify ns/msg', better: 'lower', digits: 0 },
  ],
};
