# Configures the project with ANGULAR_WITH_GLOO=OFF and checks which targets it has:
#   cmake -DSOURCE=... -DBINARY=... -DTorch_DIR=... -DGENERATOR=... -P without_gloo.cmake
file(REMOVE_RECURSE ${BINARY})
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE} -B ${BINARY} -G ${GENERATOR} -DTorch_DIR=${Torch_DIR}
                        -DANGULAR_WITH_GLOO=OFF -DANGULAR_BUILD_BENCHMARKS=OFF
                RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "configuring without Gloo failed:\n${output}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BINARY} --target help OUTPUT_VARIABLE targets)
foreach(wanted angular_tests angular-train angular-compare)
  if(NOT targets MATCHES "${wanted}:")
    message(FATAL_ERROR "configured without Gloo, the build has no target ${wanted}:\n${targets}")
  endif()
endforeach()
if(targets MATCHES "angular_distributed_tests:")
  message(FATAL_ERROR "configured without Gloo, the build still has the multi-process tests")
endif()
message(STATUS "without Gloo: the unit tests and the trainers are configured, the multi-process tests are not")
