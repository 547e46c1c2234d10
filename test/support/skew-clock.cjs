// Preloaded with `node --require` by the fault harness (faults.ts, skewedClock): every Date in the process reads
// CLOCK_SKEW_MS milliseconds off the real clock, as on a machine whose clock drifted. Timers are untouched.
const skew = Number(process.env.CLOCK_SKEW_MS || 0);
if (skew !== 0) {
  const RealDate = Date;
  class SkewedDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(RealDate.now() + skew);
      else super(...args);
    }
    static now() {
      return RealDate.now() + skew;
    }
  }
  globalThis.Date = SkewedDate;
}
