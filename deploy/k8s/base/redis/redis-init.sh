#!/bin/sh
# Writes /run/redis/redis.conf: the base file, the password, this pod's stable name and, unless this pod is the
# master, `replicaof` the master. The Sentinels know the master after a failover; on a first start (no Sentinel
# answers yet) trendgen-redis-0 is the master.
set -eu
self="$(hostname).trendgen-redis"
master=""
for sentinel in trendgen-sentinel-0 trendgen-sentinel-1 trendgen-sentinel-2; do
  answer=$(redis-cli -h "$sentinel.trendgen-sentinel" -p 26379 --raw \
    sentinel get-master-addr-by-name trendgen 2>/dev/null | head -n 1) || answer=""
  if [ -n "$answer" ]; then
    master="$answer"
    break
  fi
done
[ -n "$master" ] || master="trendgen-redis-0.trendgen-redis"
{
  cat /config/redis.conf
  echo "requirepass $REDIS_PASSWORD"
  echo "masterauth $REDIS_PASSWORD"
  echo "replica-announce-ip $self"
  if [ "$master" != "$self" ]; then echo "replicaof $master 6379"; fi
} > /run/redis/redis.conf
