# Hosts of libmoediffuse: the example host, the GIMP plug-in (when
# libgimp's development files are installed) and the Krita plug-in's files.
if(NOT TARGET moediffuse)
  return()
endif()

# The example dlopens the library, so it links only libdl.
add_executable(moediffuse-example ${CMAKE_SOURCE_DIR}/plugins/examples/example_host.c)
target_compile_options(moediffuse-example PRIVATE ${MD_WARNINGS})
target_include_directories(moediffuse-example PRIVATE ${CMAKE_SOURCE_DIR}/include)
target_link_libraries(moediffuse-example PRIVATE ${CMAKE_DL_LIBS})
add_dependencies(moediffuse-example moediffuse)

# "Paint with experts": the router override (ABI 1.5) steering an expert
# onto a masked region; dlopens the library like the example.
add_executable(moediffuse-paint ${CMAKE_SOURCE_DIR}/plugins/examples/paint_with_experts.c)
target_compile_options(moediffuse-paint PRIVATE ${MD_WARNINGS})
target_include_directories(moediffuse-paint PRIVATE ${CMAKE_SOURCE_DIR}/include)
target_link_libraries(moediffuse-paint PRIVATE ${CMAKE_DL_LIBS} m)
add_dependencies(moediffuse-paint moediffuse)

# GIMP 2.10 plug-in (C, out of process, linked to the library).
pkg_check_modules(GIMP QUIET IMPORTED_TARGET gimp-2.0 gimpui-2.0)
if(GIMP_FOUND)
  file(GLOB MD_GIMP_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/plugins/gimp/*.c)
  add_executable(moediffuse-gimp ${MD_GIMP_SOURCES})
  target_compile_options(moediffuse-gimp PRIVATE ${MD_WARNINGS})
  target_link_libraries(moediffuse-gimp PRIVATE moediffuse PkgConfig::GIMP)
  # GIMP wants plug-in N in a folder N of a plug-in directory.
  # Relative to the install prefix: Debian's GIMP looks in /usr/lib/gimp/2.0/plug-ins.
  set(MD_GIMP_PLUGIN_DIR lib/gimp/2.0/plug-ins CACHE STRING
      "Where cmake --install puts the GIMP plug-in's moediffuse/ folder")
  # Installed, the plug-in finds the library relative to itself, under any prefix.
  file(RELATIVE_PATH MD_GIMP_TO_LIB /${MD_GIMP_PLUGIN_DIR}/moediffuse /${CMAKE_INSTALL_LIBDIR})
  set_target_properties(moediffuse-gimp PROPERTIES
    OUTPUT_NAME moediffuse RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/gimp-plug-ins/moediffuse
    INSTALL_RPATH "$ORIGIN/${MD_GIMP_TO_LIB}")
  install(TARGETS moediffuse-gimp RUNTIME DESTINATION ${MD_GIMP_PLUGIN_DIR}/moediffuse)
endif()

# Krita plug-in (Python, loads the library with ctypes): Krita looks for
# Python plug-ins in share/krita/pykrita.
install(DIRECTORY ${CMAKE_SOURCE_DIR}/plugins/krita/moediffuse DESTINATION share/krita/pykrita
  PATTERN __pycache__ EXCLUDE)
install(FILES ${CMAKE_SOURCE_DIR}/plugins/krita/moediffuse.desktop DESTINATION share/krita/pykrita)
