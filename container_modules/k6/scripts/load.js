// HTTP load for one perfops container. Settings: see ../modules/k6.nix.
import http from 'k6/http';
import { check, sleep } from 'k6';

const target = (__ENV.PERFOPS_K6_TARGET || '').replace(/\/+$/, '');
if (!target) {
  throw new Error('PERFOPS_K6_TARGET is not set: add it to the service environment in containers.json');
}
const stateDir = __ENV.STATE_DIRECTORY;

// A restored paths.txt replays the request mix of a recent run instead of
// hammering only the front page.
let paths = ['/'];
try {
  const restored = open(`${stateDir}/paths.txt`)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('/'));
  if (restored.length > 0) {
    paths = restored;
  }
} catch (_) {
  // No recent state: the front page only.
}

export const options = {
  vus: Number(__ENV.PERFOPS_K6_VUS || 10),
  duration: __ENV.PERFOPS_K6_DURATION || '10m',
};

export default function () {
  const path = paths[Math.floor(Math.random() * paths.length)];
  const res = http.get(`${target}${path}`);
  check(res, { 'no server error': (r) => r.status > 0 && r.status < 500 });
  sleep(1);
}

// Kept in the state dir so the next run (or a snapshot of it) has it.
export function handleSummary(data) {
  return { [`${stateDir}/last-summary.json`]: JSON.stringify(data) };
}
