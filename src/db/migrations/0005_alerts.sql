-- Open incidents: one alert when a condition starts, one when it resolves, across restarts and processes.
create table alert_incidents (
  key text primary key,
  summary text not null,
  opened_at timestamptz not null default now(),
  notified boolean not null default false
);
