import { describeLoadScenarios, type LoadScenario } from './harness/load-scenarios.ts';

/** trendgen's own processes: the supervisor must bring each back alone, or `trendgen up` after a power cut. */
const SCENARIOS: LoadScenario[] = [
  { name: 'kill-api', why: 'I1, I2', inject: (s) => s.kill('serve') },
  { name: 'kill-worker', why: 'I4', inject: (s) => s.kill('worker') },
  { name: 'kill-scheduler', why: 'I6', inject: (s) => s.kill('scheduler') },
  { name: 'kill-everything', why: 'I1–I5', inject: (s) => s.killEverything(), restart: true },
];

describeLoadScenarios(
  'faults: trendgen processes SIGKILLed under load through the API',
  'process-kills',
  SCENARIOS,
);
