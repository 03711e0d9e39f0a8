#!/usr/bin/env bash
# Runs a single-node Apache Kafka (KRaft, broker+controller in one JVM) on 127.0.0.1.
# The broker comes from Maven Central as jars, run with plain `java`; no Docker, no tarball.
# Usage: kafka.sh install|start|stop|status|restart
source "$(dirname "$0")/common.sh"

KHOME="$POLKU_HOME/kafka"
LIB="$KHOME/lib-$KAFKA_VERSION"
DATA="$KHOME/data"
CONF="$KHOME/server.properties"
PIDFILE="$POLKU_HOME/run/kafka.pid"
LOGFILE="$POLKU_HOME/logs/kafka.log"

install() {
  [ -f "$LIB/.complete" ] && return 0
  command -v java >/dev/null || { log "java is required (Java 17)"; exit 1; }
  command -v mvn >/dev/null || { log "maven is required to fetch Kafka from Maven Central"; exit 1; }
  log "fetching Kafka $KAFKA_VERSION and its runtime dependencies from Maven Central"
  mkdir -p "$KHOME"
  # The published kafka_2.13 POM carries no logging backend; add log4j2 for slf4j 1.x.
  cat >"$KHOME/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.polku.local</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
  rm -rf "$LIB.tmp"
  if ! mvn -q -B -Dstyle.color=never -f "$KHOME/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIB.tmp"; then
    log "could not fetch Kafka from Maven Central"; exit 1
  fi
  mv "$LIB.tmp" "$LIB" && touch "$LIB/.complete"
}

configure() {
  cat >"$CONF" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA
num.partitions=6
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=168
PROPS
  cat >"$KHOME/log4j2.properties" <<'L4J'
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka.server.KafkaRaftServer
logger.kafka.level = INFO
L4J
}

JAVA_OPTS=(-Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$KHOME/log4j2.properties" -cp "$LIB/*")
java_run() { java "${JAVA_OPTS[@]}" "$@"; }

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  install
  if running; then log "kafka already running (pid $(cat "$PIDFILE"))"; return 0; fi
  configure
  if [ ! -f "$DATA/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java_run kafka.tools.StorageTool random-uuid)
    java_run kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$CONF" >>"$LOGFILE" 2>&1
  fi
  log "starting kafka on 127.0.0.1:$KAFKA_PORT"
  # 9>&-: the broker must not inherit (and so hold) the start/stop lock.
  nohup java "${JAVA_OPTS[@]}" kafka.Kafka "$CONF" >>"$LOGFILE" 2>&1 </dev/null 9>&- &
  echo $! >"$PIDFILE"
  if ! wait_for_port 127.0.0.1 "$KAFKA_PORT" 90; then
    log "kafka did not start; last log lines:"; tail -n 30 "$LOGFILE" >&2; exit 1
  fi
}

stop() {
  running || { rm -f "$PIDFILE"; return 0; }
  local pid; pid=$(cat "$PIDFILE")
  kill -TERM "$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$PIDFILE"
  log "kafka stopped"
}

# One start/stop at a time, whoever calls (tests that restart the broker run in parallel too).
lock() { exec 9>"$POLKU_HOME/run/kafka.lock"; flock 9; }

case "${1:-}" in
  install) lock; install ;;
  start) lock; start ;;
  stop) lock; stop ;;
  restart) lock; stop; start ;;
  status) if running; then echo "kafka running on 127.0.0.1:$KAFKA_PORT"; else echo "kafka stopped"; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|restart|status" >&2; exit 2 ;;
esac
