#!/usr/bin/env bash
# Builds the Java client from Debian's packages (no Maven repository needed) and, with
# `test`, runs its JUnit 5 suite against the real broker:
#   clients/java/build.sh          generate from the proto + compile  -> build/classes,
#                                  build/credbroker-client.jar, and build/classpath: that jar
#                                  and Debian's jars it needs at run time (absolute paths), the
#                                  classpath for your own code
#   clients/java/build.sh test     ... + compile and run the tests
# Needs: openjdk-17-jdk-headless protobuf-compiler protobuf-compiler-grpc-java-plugin
#   libgrpc-java libprotobuf-java libnetty-java libperfmark-java libguava-java
#   libgoogle-gson-java libjsr305-java liberror-prone-java libgeronimo-annotation-1.3-spec-java junit5
# The generated code lives in build/gen (git-ignored), so it is never stale.
set -euo pipefail
cd "$(dirname "$0")"
S=/usr/share/java
jars=(grpc-api grpc-context grpc-core grpc-netty grpc-protobuf grpc-protobuf-lite grpc-stub protobuf guava
      perfmark-api jsr305 error_prone_annotations gson netty-buffer netty-codec netty-codec-http
      netty-codec-http2 netty-codec-socks netty-common netty-handler netty-handler-proxy netty-resolver
      netty-transport netty-transport-native-unix-common)
CP=""
for jar in "${jars[@]}"; do
  [ -f "$S/$jar.jar" ] || { echo "build.sh: $S/$jar.jar is missing (see the apt-get line at the top)" >&2; exit 1; }
  CP="$CP:$S/$jar.jar"
done
CP=${CP#:}
# grpc-java 1.41's stubs carry @javax.annotation.Generated, which JDK 17 lacks: compile only.
GENERATED_ANNOTATION=$S/geronimo-annotation-1.3-spec.jar

rm -rf build && mkdir -p build/gen build/classes
protoc -I ../../proto --java_out=build/gen --grpc-java_out=build/gen \
  --plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin credbroker/v1/broker.proto
javac -Xlint:-options --release 17 -d build/classes -cp "$CP:$GENERATED_ANNOTATION" \
  $(find build/gen src/main/java -name '*.java')
jar --create --file build/credbroker-client.jar -C build/classes .
echo "$PWD/build/credbroker-client.jar:$CP" > build/classpath

if [ "${1:-}" = test ]; then
  JUNIT=$S/junit-platform-console-standalone.jar
  mkdir -p build/test-classes
  javac --release 17 -d build/test-classes -cp "build/classes:$CP:$JUNIT" $(find src/test/java -name '*.java')
  java -jar "$JUNIT" --disable-banner --disable-ansi-colors --details=tree --fail-if-no-tests \
    -cp "build/classes:build/test-classes:$CP" --scan-classpath build/test-classes
fi
