export function buildIsStale(root: string): boolean;
export function markBuilt(root: string): void;
export function consoleIsStale(root: string): boolean;
export function markConsoleBuilt(root: string): void;
export function buildConsole(root: string): boolean;
