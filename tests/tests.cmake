# Unit tests: every tests/test_*.c is one executable and one ctest.
file(GLOB MD_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_*.c)
foreach(src ${MD_TEST_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_compile_options(${name} PRIVATE ${MD_WARNINGS})
  target_link_libraries(${name} PRIVATE md_engine)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "MD_SOURCE_DIR=${CMAKE_SOURCE_DIR};MD_GOLDEN_DIR=${MD_GOLDEN_DIR}"
    LABELS unit)
endforeach()

# Golden cases: one test per folder of the reference set, so a new case is
# added by dropping in a folder.
set(MD_GOLDEN_PENDING) # cases known not to pass yet (none)
if(TARGET golden-check AND EXISTS ${MD_GOLDEN_DIR})
  file(GLOB MD_GOLDEN_CASES LIST_DIRECTORIES true ${MD_GOLDEN_DIR}/*)
  foreach(dir ${MD_GOLDEN_CASES})
    if(IS_DIRECTORY ${dir} AND EXISTS ${dir}/golden.json)
      get_filename_component(case ${dir} NAME)
      add_test(NAME golden.${case} COMMAND golden-check ${dir})
      set_tests_properties(golden.${case} PROPERTIES LABELS golden)
      if(case IN_LIST MD_GOLDEN_PENDING)
        set_tests_properties(golden.${case} PROPERTIES DISABLED TRUE)
      endif()
    endif()
  endforeach()
endif()

file(GLOB MD_SHELL_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/*.sh)
foreach(script ${MD_SHELL_TESTS})
  get_filename_component(name ${script} NAME_WE)
  add_test(NAME ${name} COMMAND bash ${script} ${CMAKE_BINARY_DIR})
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "MD_SOURCE_DIR=${CMAKE_SOURCE_DIR};MD_GOLDEN_DIR=${MD_GOLDEN_DIR}"
    LABELS e2e)
endforeach()
