#!/bin/sh
# Writes /run/sentinel/sentinel.conf: monitor the master the other Sentinels report, or trendgen-redis-0 on a
# first start. Sentinel rewrites this file as it learns; it starts from here after a restart and learns the
# replicas and the epoch again from the master and its peers.
set -eu
self="$(hostname).trendgen-sentinel"
master=""
for sentinel in trendgen-sentinel-0 trendgen-sentinel-1 trendgen-sentinel-2; do
  [ "$sentinel.trendgen-sentinel" = "$self" ] && continue
  answer=$(redis-cli -h "$sentinel.trendgen-sentinel" -p 26379 --raw \
    sentinel get-master-addr-by-name trendgen 2>/dev/null | head -n 1) || answer=""
  if [ -n "$answer" ]; then
    master="$answer"
    break
  fi
done
[ -n "$master" ] || master="trendgen-redis-0.trendgen-redis"
cat > /run/sentinel/sentinel.conf <<CONF
port 26379
dir /tmp
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $self
sentinel monitor trendgen $master 6379 2
sentinel auth-pass trendgen $REDIS_PASSWORD
sentinel down-after-milliseconds trendgen 5000
sentinel failover-timeout trendgen 60000
sentinel parallel-syncs trendgen 1
CONF
