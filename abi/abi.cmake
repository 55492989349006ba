# libmoediffuse: the engine behind the plugin ABI of include/moediffuse.h.
# Only moediffuse_get_api is exported (version script); the soname carries
# the ABI major.
include(GNUInstallDirs)

file(STRINGS ${CMAKE_SOURCE_DIR}/include/moediffuse.h MD_ABI_LINES
     REGEX "^#define MOEDIFFUSE_ABI_(MAJOR|MINOR) [0-9]+")
foreach(line ${MD_ABI_LINES})
  if(line MATCHES "MAJOR ([0-9]+)")
    set(MD_ABI_MAJOR ${CMAKE_MATCH_1})
  elseif(line MATCHES "MINOR ([0-9]+)")
    set(MD_ABI_MINOR ${CMAKE_MATCH_1})
  endif()
endforeach()

file(GLOB MD_ABI_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/abi/*.c)
add_library(moediffuse SHARED ${MD_ABI_SOURCES})
target_compile_options(moediffuse PRIVATE ${MD_WARNINGS})
target_compile_definitions(moediffuse PRIVATE MD_LIBRARY_VERSION="${PROJECT_VERSION}")
target_include_directories(moediffuse PUBLIC
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(moediffuse PRIVATE md_engine)
set_target_properties(moediffuse PROPERTIES
  C_VISIBILITY_PRESET hidden
  VERSION ${MD_ABI_MAJOR}.${MD_ABI_MINOR}.0
  SOVERSION ${MD_ABI_MAJOR}
  PUBLIC_HEADER ${CMAKE_SOURCE_DIR}/include/moediffuse.h
  LINK_DEPENDS ${CMAKE_SOURCE_DIR}/abi/moediffuse.map)
target_link_options(moediffuse PRIVATE
  -Wl,--no-undefined -Wl,--exclude-libs,ALL
  -Wl,--version-script=${CMAKE_SOURCE_DIR}/abi/moediffuse.map)

# The .pc file finds the prefix from its own place, so `cmake --install
# --prefix` anywhere gives a working file.
file(RELATIVE_PATH MD_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" MD_PC_TO_PREFIX "${MD_PC_TO_PREFIX}")
configure_file(${CMAKE_SOURCE_DIR}/abi/moediffuse.pc.in ${CMAKE_BINARY_DIR}/moediffuse.pc @ONLY)
install(TARGETS moediffuse
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${CMAKE_BINARY_DIR}/moediffuse.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
