// The process log: pino JSON lines on stdout (or a given stream), one logger per process.
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export function createLogger(level = 'info', destination?: DestinationStream): Logger {
  return pino({ name: 'sluice', level, base: { pid: process.pid } }, destination ?? pino.destination({ sync: false }));
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
