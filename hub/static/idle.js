// Idle detection, as a small state machine with injected timers (no DOM here: hub.js
// feeds it input and visibility events). The connection is `away` after `idleMs` without
// input, or once the page has been hidden for `hiddenDelayMs`; any input on a visible page
// makes it `online` again. `onChange(state)` runs only on real transitions.
//
// Why a delay for hidden pages: closing or reloading a tab hides it first. Reporting away
// at once would show every reload as a brief "away" (and every close as away, then
// offline), which is exactly the flicker the hub's offline grace exists to prevent. A
// page that unloads within the delay never reports it; a quick tab switch does not either.

export class IdleTracker {
  /**
   * @param {object} options
   * @param {number} [options.idleMs=300000]  0 or Infinity: never idle from inactivity
   * @param {boolean} [options.awayWhenHidden=true]
   * @param {number} [options.hiddenDelayMs=2000]  how long hidden before reporting away
   * @param {(state: 'online'|'away') => void} [options.onChange]
   * @param {() => number} [options.now]
   * @param {(fn: () => void, ms: number) => any} [options.setTimer]
   * @param {(handle: any) => void} [options.clearTimer]
   */
  constructor(options = {}) {
    this.idleMs = options.idleMs ?? 300000;
    this.awayWhenHidden = options.awayWhenHidden ?? true;
    this.hiddenDelayMs = options.hiddenDelayMs ?? 2000;
    this.onChange = options.onChange ?? (() => {});
    this.now = options.now ?? (() => Date.now());
    this.setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = options.clearTimer ?? ((h) => clearTimeout(h));
    this.state = 'online';
    this.hidden = false;
    this.lastInput = this.now();
    this.timer = null;
    this.hiddenTimer = null;
    this.running = false;
  }

  get idleEnabled() {
    return Number.isFinite(this.idleMs) && this.idleMs > 0;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.lastInput = this.now();
    this._schedule(this.idleMs);
  }

  stop() {
    this.running = false;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    this._cancelHidden();
  }

  /** The user did something (pointer, key, touch, scroll, focus). */
  input() {
    this.lastInput = this.now();
    if (!this.running) return;
    if (this.hidden && this.awayWhenHidden) return;
    this._set('online');
    if (this.timer === null) this._schedule(this.idleMs);
  }

  /** The page became hidden (true) or visible again (false). */
  setHidden(hidden) {
    this.hidden = Boolean(hidden);
    if (!this.running) return;
    if (this.hidden) {
      if (!this.awayWhenHidden || this.hiddenTimer !== null) return;
      if (this.hiddenDelayMs > 0) {
        this.hiddenTimer = this.setTimer(() => {
          this.hiddenTimer = null;
          if (this.running && this.hidden) this._set('away');
        }, this.hiddenDelayMs);
      } else {
        this._set('away');
      }
    } else {
      this._cancelHidden();
      this.input();
    }
  }

  _cancelHidden() {
    if (this.hiddenTimer !== null) this.clearTimer(this.hiddenTimer);
    this.hiddenTimer = null;
  }

  _schedule(ms) {
    if (!this.idleEnabled) return;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = this.setTimer(() => this._check(), Math.max(0, ms));
  }

  _check() {
    this.timer = null;
    if (!this.running) return;
    const quiet = this.now() - this.lastInput;
    if (quiet >= this.idleMs) {
      this._set('away');
      // No timer while away: the next input() restarts it.
    } else {
      this._schedule(this.idleMs - quiet);
    }
  }

  _set(state) {
    if (this.state === state) return;
    this.state = state;
    this.onChange(state);
  }
}
