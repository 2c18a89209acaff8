-- The scheduler's latest doctor report, so that /metrics shows it without running slow checks on every scrape.
create table doctor_reports (
  id integer primary key check (id = 1),
  taken_at timestamptz not null default now(),
  report jsonb not null
);
