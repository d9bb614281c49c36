/**
 * The loop every worker of gemm-threads.ts and step-threads.ts runs, as JavaScript source for an
 * evaluated Worker. The control block's first words are shared by both pools (Int32):
 *   [0] job sequence: a worker waits for it to change, -1 stops it;
 *   [1] next task to take (Atomics.add), [2] tasks done (notified), [3] task count,
 *   [4] failure flag (a task threw).
 * `setup` is source run once (it must define `ctl`, the control block as an Int32Array) and
 * `runTask` a statement run for task `t`.
 */
export function workerTaskLoopSource(setup: string, runTask: string): string {
  return `
${setup}
let seen = 0;
for (;;) {
  Atomics.wait(ctl, 0, seen);
  seen = Atomics.load(ctl, 0);
  if (seen < 0) break;
  for (;;) {
    const t = Atomics.add(ctl, 1, 1);
    if (t >= Atomics.load(ctl, 3)) break;
    try {
      ${runTask}
    } catch (error) {
      Atomics.store(ctl, 4, 1);
    }
    Atomics.add(ctl, 2, 1);
    Atomics.notify(ctl, 2);
  }
}
`;
}
