// Readiness and watchdog for systemd (`Type=notify`, `WatchdogSec=`): sd_notify(3) datagrams to
// $NOTIFY_SOCKET. READY=1 once every listener is bound (so `systemctl start` returns when sluice
// answers, and units ordered after it find it answering), RELOADING=1/READY=1 around a reload,
// STOPPING=1, and WATCHDOG=1 at half of $WATCHDOG_USEC from the event loop, so a loop that hangs
// is restarted by systemd. Without $NOTIFY_SOCKET (not under systemd, or Type=simple) nothing is sent.
import { execFile } from 'node:child_process';
import { loadBatchBinding } from '../native/udp-batch.js';

export interface SystemdNotifier {
  ready(status: string): void;
  reloading(): void;
  status(text: string): void;
  stopping(): void;
  close(): void;
}

type Send = (text: string) => void;

/** The notifier for this process's environment; a no-op one when systemd does not listen. */
export function systemdNotifier(env: NodeJS.ProcessEnv = process.env, onError: (e: string) => void = () => {}): SystemdNotifier {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return { ready() {}, reloading() {}, status() {}, stopping() {}, close() {} };
  const send = sender(socket, onError);
  let watchdog: NodeJS.Timeout | undefined;
  const usec = Number(env.WATCHDOG_USEC);
  // WATCHDOG_PID names the process the watchdog is for (a child started by the main one is not it).
  const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid;
  return {
    ready(status) {
      send(`READY=1\nSTATUS=${status}\nMAINPID=${process.pid}`);
      if (usec > 0 && forUs && !watchdog) {
        watchdog = setInterval(() => send('WATCHDOG=1'), Math.max(100, Math.floor(usec / 2000)));
        watchdog.unref();
      }
    },
    reloading() {
      // MONOTONIC_USEC: systemd 253+ (Type=notify-reload) matches it with the reload it asked for.
      send(`RELOADING=1\nMONOTONIC_USEC=${Math.floor(performance.timeOrigin * 1000 + performance.now() * 1000)}`);
    },
    status(text) {
      send(`READY=1\nSTATUS=${text}`);
    },
    stopping() {
      send('STOPPING=1');
      this.close();
    },
    close() {
      if (watchdog) clearInterval(watchdog);
      watchdog = undefined;
    },
  };
}

/** Through the native addon (one sendto); else through systemd-notify(1), which needs NotifyAccess=all. */
function sender(socket: string, onError: (e: string) => void): Send {
  const native = loadBatchBinding().binding;
  if (native) {
    return (text) => {
      const r = native.notify(socket, text);
      if (r !== 0) onError(`sd_notify to ${socket} failed (errno ${-r})`);
    };
  }
  return (text) => {
    // MAINPID is in the text where it belongs (READY); --no-block: no barrier round trip to wait for.
    execFile('systemd-notify', ['--no-block', ...text.split('\n')], { env: { ...process.env, NOTIFY_SOCKET: socket }, timeout: 5000 }, (err) => {
      if (err) onError(`systemd-notify failed: ${err.message}`);
    });
  };
}
