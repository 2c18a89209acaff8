import { describeLoadScenarios, type LoadScenario } from './harness/load-scenarios.ts';

/** The data services under trendgen: killed, or Redis emptied; `trendgen up` restarts them itself. */
const SCENARIOS: LoadScenario[] = [
  {
    name: 'kill-postgres',
    why: 'I1, I2, I4',
    inject: (s) => s.kill('postgres'),
    // 187137087: a child that died while PostgreSQL restarted was never started again.
    // 647467268: a read on a pooled connection that died with the database answered 500, not 503.
    regressions: [187137087, 647467268],
  },
  { name: 'kill-redis', why: 'I4', inject: (s) => s.kill('redis') },
  { name: 'redis-data-lost', why: 'I4', inject: (s) => s.wipeRedis() },
];

describeLoadScenarios(
  'faults: PostgreSQL and Redis killed or wiped under load through the API',
  'service-kills',
  SCENARIOS,
);
