# Cross toolchain for aarch64 routers, using Debian's cross compiler (aarch64-linux-gnu-g++) and the
# multiarch -dev packages (dpkg --add-architecture; see tools/cross-build.sh).
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(MPUDP_CROSS_TRIPLET aarch64-linux-gnu)
set(MPUDP_QEMU_ARCH aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-debian-cross.cmake)
